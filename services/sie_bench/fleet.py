"""Many fake workers in one process: `python -m sie_bench.fleet --count 1000 --heartbeat 1`.

Each worker listens on its own loopback port and speaks the real `/ws/status` protocol: a full
status frame (`sie_actors.domain.worker_status.status_frame`) on connect, then one per heartbeat,
each worker at its own phase (real workers are not synchronized). One trio-websocket server
serves every port; the worker is known by the port a connection came in on. Lighter than
`sie_actors.testing.fake_worker` only in that it is one server for all, with pre-serialized
frames (the timestamp is spliced in), so this process stays far below one core at 1,000 frames/s
and the gateway's cost is what gets measured.

Control on stdin, one command a line; each is answered with `ok` on stdout:
  hash VALUE beat   every worker reports VALUE from its next heartbeat on (no extra frame)
  hash VALUE push   every worker reports VALUE and sends a frame now
  stats             prints `stats FRAMES CONNECTIONS` (frames sent so far, open connections)
On start it prints `ports P1,P2,...` once every port listens.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import orjson
import trio
import trio_websocket

from sie_actors.domain.worker_status import status_frame

TS_MARK = b"1.2345678901234567"


class Fleet:
    def __init__(self, count: int, heartbeat: float, bundle: str) -> None:
        self.count = count
        self.heartbeat = heartbeat
        self.bundle = bundle
        self.hash = ""
        self.by_port: dict[int, int] = {}
        self.templates: list[tuple[bytes, bytes]] = []
        self.changed = trio.Event()
        self.pushes = 0
        self.frames = 0
        self.connections = 0
        self.set_hash("")

    def set_hash(self, value: str) -> None:
        self.hash = value
        self.templates = []
        for i in range(self.count):
            text = orjson.dumps(status_frame(
                name=f"fake-{i:04d}", ready=True, bundle=self.bundle, bundle_config_hash=value,
                pool_name=self.bundle, timestamp=float(TS_MARK))).replace(
                TS_MARK, b"%TS%", 1)
            head, _, tail = text.partition(b"%TS%")
            self.templates.append((head, tail))

    def frame(self, index: int) -> str:
        head, tail = self.templates[index]
        return (head + repr(time.time()).encode() + tail).decode()

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        index = self.by_port[request.local.port]
        ws = await request.accept()
        self.connections += 1
        try:
            seen = self.pushes
            await ws.send_message(self.frame(index))
            self.frames += 1
            # each worker at its own phase
            next_beat = trio.current_time() + random.uniform(0, self.heartbeat)
            while True:
                # a push that came while the last frame was being sent is not missed: it is
                # counted, and the counter is read again before waiting
                if self.pushes == seen:
                    with trio.move_on_at(next_beat):
                        await self.changed.wait()
                pushed = self.pushes != seen
                seen = self.pushes
                await ws.send_message(self.frame(index))
                self.frames += 1
                if not pushed:
                    next_beat += self.heartbeat
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self.connections -= 1

    def push(self) -> None:
        self.pushes += 1
        self.changed.set()
        self.changed = trio.Event()


async def control(fleet: Fleet) -> None:
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = b""
    while True:
        chunk = await stdin.receive_some(4096)
        if not chunk:
            raise SystemExit(0)  # the benchmark went away
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "hash":
                fleet.set_hash(words[1] if words[1] != "-" else "")
                if len(words) > 2 and words[2] == "push":
                    fleet.push()
                print("ok", flush=True)
            elif words[0] == "stats":
                print(f"stats {fleet.frames} {fleet.connections}", flush=True)


async def main_async(count: int, heartbeat: float, bundle: str) -> None:
    fleet = Fleet(count, heartbeat, bundle)
    listeners = []
    for i in range(count):
        found = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = found[0].socket.getsockname()[1]
        fleet.by_port[port] = i
        listeners.extend(found)
    server = trio_websocket.WebSocketServer(fleet.handler, listeners,
                                            connect_timeout=10, disconnect_timeout=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        print("ports " + ",".join(str(p) for p in fleet.by_port), flush=True)
        await control(fleet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sie_bench.fleet")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--bundle", default="default")
    args = parser.parse_args(argv)
    try:
        trio.run(main_async, args.count, args.heartbeat, args.bundle)
    except (SystemExit, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

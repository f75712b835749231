"""One gateway with 1,000 worker sessions at 1 s heartbeats: status staleness and gateway CPU.

The workers are `sie_bench.fleet`, one helper process serving 1,000 loopback ports with the real
`/ws/status` protocol, so the gateway process is measured alone: its CPU from /proc/PID/stat over
1 s windows while every session streams heartbeats and nobody queries the gateway.

Staleness: every worker switches the hash it reports (to the bundle's expected hash, then to a
wrong one), effective from its own next heartbeat, with no extra frame. `/status` of a model of
that bundle is polled every 50 ms; for each worker, staleness is the time from the switch until
the gateway's answer shows it on the new side (acked or pending). That is up to one heartbeat
plus however long the gateway takes to take a frame in. A burst round, where all workers push a
frame at once, is reported besides.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

import sys
from pathlib import Path

import orjson
import trio

from sie_actors.procs import Child, ProcessSpec
from sie_bench.cluster import Fleet, client, now, wait_dialled
from sie_bench.procfs import CpuMeter
from sie_bench.rawhttp import RawHTTP
from sie_bench.stats import Row, Target

NAME = "sessions"
POLL = 0.05


class FleetProcess:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.buffer = b""

    async def line(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.process.stdout.receive_some(1 << 16)
            if not chunk:
                raise RuntimeError("fleet helper exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    async def command(self, text: str) -> str:
        await self.process.stdin.send_all(text.encode() + b"\n")
        return await self.line()


@asynccontextmanager
async def open_fake_fleet(workdir: Path, count: int,
                          heartbeat: float) -> AsyncIterator[tuple[FleetProcess, list[str]]]:
    """`sie_bench.fleet` serving `count` fake workers: its control channel and their URLs."""
    helper = Child(ProcessSpec("fleet", (sys.executable, "-m", "sie_bench.fleet", "--count",
                                         str(count), "--heartbeat", str(heartbeat))),
                   workdir / "fleet.log", pipes=True)
    await helper.start()
    try:
        workers = FleetProcess(helper.process)
        ports = (await workers.line()).split()[1].split(",")
        yield workers, [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        with trio.CancelScope(shield=True):
            await helper.kill()


async def observe(http: RawHTTP, path: str, names: set[str], side: str, since: float,
                  timeout: float) -> list[float]:
    """Poll `/status` until every worker in `names` is on `side`; per worker, the delay (ms)
    from `since` to the first answer that showed it there."""
    seen: dict[str, float] = {}
    deadline = now() + timeout
    while len(seen) < len(names):
        status, body = await http.get(path)
        stamp = now()
        if status != 200:
            raise RuntimeError(f"/status answered {status}")
        bundle = orjson.loads(body)["bundles"][0]
        for name in bundle[f"{side}_workers"]:
            if name in names and name not in seen:
                seen[name] = (stamp - since) * 1000
        if stamp > deadline:
            raise TimeoutError(f"{len(names) - len(seen)} workers never showed {side}")
        await trio.sleep(POLL)
    return list(seen.values())


async def run(workdir: Path, count: int, heartbeat: float, windows: int,
              rounds: int) -> list[Row]:
    with Fleet(workdir) as fleet:
        async with open_fake_fleet(workdir, count, heartbeat) as (workers, urls):
            started = now()
            gateway = fleet.gateway("gateway", None, None, urls, seed=True)
            async with client(gateway.url) as http:
                await wait_dialled(http, "/readyz", count, timeout=120, interval=0.1)
                connect_ms = (now() - started) * 1000
                listing = (await http.get("/v1/configs/models")).json()["models"]
                model = None
                for item in listing:
                    status = (await http.get(f"/v1/configs/models/{item['model_id']}/status")).json()
                    if [b["bundle_id"] for b in status["bundles"]] == ["default"]:
                        model = item["model_id"]
                        expected = status["bundles"][0]["expected_bundle_config_hash"]
                        break
                assert model is not None, "no model of the default bundle in the seed"
                status_url = f"/v1/configs/models/{model}/status"

                await trio.sleep(2 * heartbeat)  # steady state
                cpu: list[float] = []
                helper_meter = CpuMeter(workers.process.pid).start()
                for _ in range(windows):
                    meter = CpuMeter(gateway.pid).start()
                    await trio.sleep(1.0)
                    cpu.append(meter.stop())
                helper_cpu = helper_meter.stop()

                names = {f"fake-{i:04d}" for i in range(count)}
                poll = RawHTTP(gateway.url)
                staleness: list[float] = []
                last: list[float] = []
                for i in range(rounds):
                    for value, side in ((expected, "acked"), (f"stale{i}", "pending")):
                        await workers.command(f"hash {value} beat")
                        since = now()
                        delays = await observe(poll, status_url, names, side, since,
                                               timeout=30)
                        staleness += delays
                        last.append(max(delays))
                burst: list[float] = []
                for i in range(max(1, rounds // 2)):
                    for value, side in ((expected, "acked"), (f"burst{i}", "pending")):
                        await workers.command(f"hash {value} push")
                        since = now()
                        burst.append(max(await observe(poll, status_url, names, side, since,
                                                       timeout=30)))
                status_ms = []
                for _ in range(20):
                    t0 = now()
                    await poll.get(status_url)
                    status_ms.append((now() - t0) * 1000)
                await poll.aclose()
    return [
        Row(NAME, f"status staleness, {count} sessions at {heartbeat:g} s heartbeats", "ms",
            staleness, Target("max", "<=", 2000),
            note=f"per worker, {rounds * 2} switches, poll {POLL * 1000:.0f} ms"),
        Row(NAME, f"gateway CPU with {count} sessions", "core", cpu, Target("max", "<=", 0.5),
            note=f"1 s windows; fake-worker process {helper_cpu:.2f} core"),
        Row(NAME, f"all {count} workers switch at once (pushed) → all visible", "ms", burst),
        Row(NAME, f"{count} sessions connected and healthy after gateway spawn", "ms",
            [connect_ms]),
        Row(NAME, f"GET /status latency with {count} workers", "ms", status_ms),
    ]

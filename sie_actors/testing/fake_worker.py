"""A lightweight in-process worker that speaks the real `/ws/status` protocol.

For gateway tests and the 1,000-session benchmark: it serves status frames over trio-websocket
without a registry of its own, so a test can make it ack, lag, leave its bundle, turn not-ready
or fall silent at will.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import orjson
import trio
import trio_websocket

from sie_actors.domain.worker_status import status_frame


@dataclass(frozen=True)
class FakeStatus:
    name: str
    bundle: str = "default"
    bundle_config_hash: str = ""
    ready: bool = True


class FakeWorker:
    def __init__(self, status: FakeStatus, *, heartbeat: float = 1.0,
                 port: int | None = None) -> None:
        self.status = status
        self.heartbeat = heartbeat
        self.silent = False  # when True, connections stay open but no frame is sent
        self.port: int | None = port  # None: any free port, known once serving
        self._changed = trio.Event()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def update(self, **changes) -> None:
        self.status = replace(self.status, **changes)
        self._changed.set()
        self._changed = trio.Event()

    def frame(self) -> str:
        s = self.status
        return orjson.dumps(status_frame(name=s.name, ready=s.ready, bundle=s.bundle,
                                         bundle_config_hash=s.bundle_config_hash,
                                         timestamp=time.time())).decode()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port or 0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        server = trio_websocket.WebSocketServer(self._handler, listeners)
        task_status.started()
        await server.run()

    async def _handler(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        self.connections += 1
        try:
            while True:
                if not self.silent:
                    await ws.send_message(self.frame())
                changed = self._changed
                with trio.move_on_after(self.heartbeat):
                    await changed.wait()
        except trio_websocket.ConnectionClosed:
            return


async def start_fake_worker(nursery: trio.Nursery, name: str, **status) -> FakeWorker:
    worker = FakeWorker(FakeStatus(name=name, **status))
    await nursery.start(worker.serve)
    return worker

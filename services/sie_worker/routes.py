"""sie-worker's HTTP and WebSocket surface, on one host:port. Everything reads the published
WorkerView; nothing here changes state.

``/ws/status`` pushes a frame at once on connect, again as soon as the view's hash or readiness
changes (the handler waits on the cell's change event, it does not poll), and a heartbeat frame
every ``heartbeat_s``. On shutdown it pushes the ``ready: false`` frame and closes with 1001.
"""

from __future__ import annotations

import logging

import trio
from quart import Response, websocket
from quart_trio import QuartTrio

from sie_actors.http.app import error_response, json_response, raw_response

from sie_worker.metrics import WorkerMetrics
from sie_worker.view import ViewCell, WorkerView

log = logging.getLogger("sie_worker.http")

GOING_AWAY = 1001


class StreamTracker:
    """Counts open status streams so shutdown can wait for their last frame."""

    def __init__(self) -> None:
        self.active = 0
        self._idle = trio.Event()
        self._idle.set()

    def opened(self) -> None:
        self.active += 1
        if self._idle.is_set():
            self._idle = trio.Event()

    def closed(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def mount(app: QuartTrio, cell: ViewCell, metrics: WorkerMetrics, tracker: StreamTracker, *,
          heartbeat_s: float) -> None:
    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        view = cell.current
        if view.ready:
            return json_response({"status": "ready"})
        if view.closing:
            message = "Worker is shutting down."
        else:
            message = ("Waiting for the first bundle snapshot from sie-config "
                       f"(bundle {view.identity.bundle!r}).")
        return error_response(503, {"error": "not_ready", "message": message})

    @app.get("/v1/worker/status")
    async def status() -> Response:
        return raw_response(cell.current.frame_text().encode("utf-8"))

    @app.websocket("/ws/status")
    async def ws_status() -> None:
        await websocket.accept()
        tracker.opened()
        metrics.ws_clients.inc()
        try:
            await stream_status(cell, heartbeat_s, metrics)
        finally:
            metrics.ws_clients.dec()
            tracker.closed()


async def stream_status(cell: ViewCell, heartbeat_s: float, metrics: WorkerMetrics) -> None:
    async def push(view: WorkerView, kind: str) -> None:
        await websocket.send(view.frame_text())
        metrics.ws_frames.labels(kind).inc()

    seen = cell.current
    await push(seen, "initial")
    sent_key = seen.frame_key
    next_beat = trio.current_time() + heartbeat_s
    while not seen.closing:
        changed = False
        with trio.move_on_at(next_beat):
            seen = await cell.wait_changed(seen)
            changed = True
        if not changed:
            seen = cell.current
            await push(seen, "heartbeat")
        elif seen.frame_key != sent_key or seen.closing:
            await push(seen, "change")
        else:
            continue  # an epoch-only change: nothing a gateway reads differs
        sent_key = seen.frame_key
        next_beat = trio.current_time() + heartbeat_s
    await websocket.close(GOING_AWAY)

"""The worker's announcement on NATS: ``sie.workers.announce`` every few seconds and right
after each (re)connect, with the URL gateways should dial (known once hypercorn has bound).

:class:`Announcer` is a ``run(task_status=...)`` for a ChildSpec and keeps no state. (The config
deltas and the epoch poll are the shared mirror's: see ``sie_worker.mirror``.)
"""

from __future__ import annotations

import logging

import trio

from sie_actors.domain.worker_status import ANNOUNCE_SUBJECT, WorkerAnnouncement
from sie_actors.nats.link import NatsLink

from sie_worker.metrics import WorkerMetrics

log = logging.getLogger("sie_worker.feeds")


def drain(receive: trio.MemoryReceiveChannel) -> None:
    """Discard what is queued: several reconnects in a row need one check."""
    while True:
        try:
            receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return


class AdvertisedUrl:
    """The URL gateways should dial, known once hypercorn has bound its port."""

    def __init__(self) -> None:
        self.value: str | None = None
        self._known = trio.Event()

    def set(self, url: str) -> None:
        self.value = url
        self._known.set()

    async def get(self) -> str:
        await self._known.wait()
        assert self.value is not None
        return self.value


class Announcer:
    def __init__(self, link: NatsLink, url: AdvertisedUrl, name: str, bundle: str,
                 interval: float, reconnects: trio.MemoryReceiveChannel[int],
                 metrics: WorkerMetrics) -> None:
        self.link = link
        self.url = url
        self.name = name
        self.bundle = bundle
        self.interval = interval
        self.reconnects = reconnects
        self.metrics = metrics

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        url = await self.url.get()
        payload = WorkerAnnouncement(self.name, url, self.bundle,
                                     self.interval).to_json_bytes()
        log.info("announcing %s as %s on %s every %gs", self.name, url, ANNOUNCE_SUBJECT,
                 self.interval)
        while True:
            if self.link.connected:
                report = await self.link.publish_confirmed([(ANNOUNCE_SUBJECT, payload)])
                self.metrics.announces.labels(
                    "confirmed" if report.all_confirmed else "unconfirmed").inc()
            with trio.move_on_after(self.interval):
                await self.reconnects.receive()  # a (re)connect: announce at once
                drain(self.reconnects)

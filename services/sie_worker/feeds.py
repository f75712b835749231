"""The worker's supervised loops around the BundleConfigActor.

* :class:`DeltaPump`: ``sie.config.models.{bundle}`` → trust and shape checks → the actor;
* :class:`EpochPoller`: sie-config's epoch, at once after each NATS (re)connect and on a timer;
* :class:`Announcer`: ``sie.workers.announce`` every few seconds and right after each connect.

Each is a ``run(task_status=...)`` for a ChildSpec. They keep no registry state; what must
survive a restart (the NATS subscription channel) is created once and reused.
"""

from __future__ import annotations

import logging

import trio

from sie_actors.domain.delta import ConfigDelta, bundle_subject, is_trusted_producer
from sie_actors.domain.errors import DomainError
from sie_actors.domain.worker_status import ANNOUNCE_SUBJECT, WorkerAnnouncement
from sie_actors.nats.link import NatsLink
from sie_actors.runtime import ActorRef, Backoff

from sie_worker.config_actor import DeltaArrived, EpochObserved
from sie_worker.metrics import WorkerMetrics
from sie_worker.source import ConfigSource, FetchError

log = logging.getLogger("sie_worker.feeds")


def drain(receive: trio.MemoryReceiveChannel) -> None:
    """Discard what is queued: several reconnects in a row need one check."""
    while True:
        try:
            receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return


class DeltaPump:
    def __init__(self, link: NatsLink, bundle: str, actor: ActorRef,
                 trusted: tuple[str, ...], metrics: WorkerMetrics) -> None:
        self.link = link
        self.subject = bundle_subject(bundle)
        self.actor = actor
        self.trusted = trusted
        self.metrics = metrics
        self._receive: trio.MemoryReceiveChannel[bytes] | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._receive is None:  # one subscription for the process, kept across restarts
            self._receive = await self.link.subscribe(self.subject)
        task_status.started()
        while True:
            raw = await self._receive.receive()
            try:
                delta = ConfigDelta.from_json(raw)
            except DomainError as exc:
                self.metrics.deltas.labels("invalid").inc()
                log.warning("dropping malformed delta on %s: %s", self.subject, exc.message)
                continue
            if not is_trusted_producer(delta.router_id, self.trusted):
                self.metrics.deltas.labels("untrusted").inc()
                log.warning("dropping delta epoch %d from untrusted producer %r",
                            delta.epoch, delta.router_id)
                continue
            await self.actor.tell(DeltaArrived(delta))


class EpochPoller:
    """Asks sie-config for its epoch and tells the actor; the actor judges drift."""

    def __init__(self, source: ConfigSource, actor: ActorRef, interval: float,
                 reconnects: trio.MemoryReceiveChannel[int] | None,
                 metrics: WorkerMetrics) -> None:
        self.source = source
        self.actor = actor
        self.interval = interval
        self.reconnects = reconnects
        self.metrics = metrics

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        retry = Backoff(initial=0.2, maximum=min(2.0, self.interval))
        next_at = trio.current_time() + self.interval
        pending_trigger: str | None = None
        while True:
            trigger = pending_trigger or "timer"
            with trio.move_on_at(next_at):
                if self.reconnects is None:
                    await trio.sleep_forever()
                else:
                    await self.reconnects.receive()
                    drain(self.reconnects)
                    trigger = "reconnect"
            next_at = trio.current_time() + self.interval
            try:
                info = await self.source.fetch_epoch()
            except FetchError as exc:
                self.metrics.epoch_polls.labels(trigger, exc.reason).inc()
                log.info("epoch check (%s) failed: %s", trigger, exc.message)
                if trigger == "reconnect":
                    # the check after a reconnect matters: retry soon rather than at the
                    # next timer tick
                    pending_trigger = trigger
                    next_at = min(next_at, trio.current_time() + retry.next_delay())
                continue
            retry.reset()
            pending_trigger = None
            self.metrics.epoch_polls.labels(trigger, "ok").inc()
            await self.actor.tell(EpochObserved(info, trigger))


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

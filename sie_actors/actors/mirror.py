"""MirrorActor and EpochPollerActor: the mirror protocol with I/O attached, for gateways and workers.

The MirrorActor owns a :class:`~sie_actors.domain.mirror_protocol.MirrorProtocol`: every message
in its mailbox is a protocol event, stepped at the current trio time, and the actor performs the
actions that come out: it publishes views (through the service's ``publish``), counts metrics
(through the service's ``metrics``), fetches snapshots from its ``source`` in a loop beside the
mailbox (handing the source where the mirror stands, so it can catch up from there), sets
timers the protocol asks for, and asks the poller for a poll after a NATS
reconnect. What differs between a gateway and a worker is data: the scope, the snapshot source,
and how a view and a count are shown.

The EpochPollerActor reads sie-config's epoch every ``interval`` seconds and when asked, and
tells the mirror what it saw together with where the mirror stood when the poll was sent (the
protocol needs both to tell drift from a race).

A fresh incarnation of either resumes from the last published view (``resume``), so a crash
loses no state that readers have seen.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Protocol

import trio

from sie_actors.domain.mirror_protocol import (Count, DeltaReceived, EpochObserved, Fetch,
                                               MirrorProtocol, MirrorScope, MirrorView, Note,
                                               Pacing, Poll, Publish, Reconnected,
                                               SnapshotFailed, SnapshotFetched, Tick, Wake)
from sie_actors.domain.delta import STARTED_SUBJECT, announcer, is_trusted_producer
from sie_actors.domain.sync import MirrorPosition
from sie_actors.nats.link import NatsLink
from sie_actors.runtime import Actor, ActorRef, Backoff, MailboxFull

from .config_client import ConfigClient, ConfigReadError, SnapshotSource

log = logging.getLogger("sie_actors.mirror")


class MirrorMetrics(Protocol):
    def count(self, action: Count) -> None: ...

    def poll(self, trigger: str, result: str) -> None: ...


@dataclass(frozen=True)
class PollNow:
    trigger: str = "timer"
    ask: int = 0  # the protocol's number for an asked poll, returned with the answer


class MirrorActor(Actor):
    def __init__(self, *, scope: MirrorScope, resume: Callable[[], MirrorView],
                 publish: Callable[[MirrorView], None], metrics: MirrorMetrics,
                 source: SnapshotSource | None, pacing: Pacing | None = None,
                 poller: ActorRef | None = None,
                 reconnects: trio.MemoryReceiveChannel[int] | None = None,
                 logger: logging.Logger = log, mailbox=None, name: str = "mirror") -> None:
        super().__init__(mailbox=mailbox, name=name)
        view = resume()
        self.protocol = MirrorProtocol(scope, view.registry, view.position, view.bootstrapped,
                                       pacing=pacing or Pacing())
        self.publish = publish
        self.metrics = metrics
        self.source = source
        self.poller = poller
        self.reconnects = reconnects
        self.log = logger
        self._fetch_send, self._fetch_receive = trio.open_memory_channel[Fetch](16)
        self._nursery: trio.Nursery | None = None
        self._startup: list = []

    async def on_start(self) -> None:
        self._startup = self.protocol.start(trio.current_time())

    async def background(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        if self.source is not None:
            nursery.start_soon(self._fetch_loop)
        if self.reconnects is not None:
            nursery.start_soon(self._reconnect_loop)
        startup, self._startup = self._startup, []
        await self._perform(startup)

    async def handle(self, message) -> object:
        await self._perform(self.protocol.step(message, trio.current_time()))
        return None

    async def _perform(self, actions) -> None:
        for action in actions:
            if isinstance(action, Publish):
                self.publish(action.view)
            elif isinstance(action, Count):
                self.metrics.count(action)
            elif isinstance(action, Note):
                self.log.log(logging.getLevelName(action.level.upper()), "%s", action.message)
            elif isinstance(action, Fetch):
                self._fetch_send.send_nowait(action)  # one in flight at a time
            elif isinstance(action, Wake):
                assert self._nursery is not None
                self._nursery.start_soon(self._wake_at, action.at)
            elif isinstance(action, Poll):
                if self.poller is not None:
                    await self.poller.tell(PollNow(action.trigger, action.ask))

    async def _wake_at(self, at: float) -> None:
        await trio.sleep_until(at)
        await self.ref.tell(Tick())

    async def _fetch_loop(self) -> None:
        assert self.source is not None
        async for fetch in self._fetch_receive:
            try:
                snapshot = await self.source.fetch(fetch.since)
            except ConfigReadError as exc:
                await self.ref.tell(SnapshotFailed(fetch.round, exc.reason, exc.message))
            else:
                await self.ref.tell(SnapshotFetched(fetch.round, snapshot))

    async def _reconnect_loop(self) -> None:
        assert self.reconnects is not None
        async for _count in self.reconnects:
            await self.ref.tell(Reconnected())


class EpochPollerActor(Actor):
    """Reads sie-config's epoch on a timer and when asked; the mirror judges what it means.

    A failed read is retried soon (``RETRY_MAX`` at most between tries), whatever asked for it,
    and the first answer after failures goes to the mirror as ``recovered``, which it judges
    like the check after a NATS reconnect (behind: fetch at once, no grace). Why: sie-config
    killed mid-write may have persisted an epoch it never published, and nothing else would
    tell the mirrors until the next write or the next routine poll (5-10 s); sie-chaos counts
    that against the heal.
    """

    RETRY_MAX = 0.5  # a read of a dead port costs nothing; noticing sie-config's return matters

    def __init__(self, mirror: ActorRef, client: ConfigClient, *,
                 position: Callable[[], MirrorPosition], interval: float,
                 metrics: MirrorMetrics, mailbox=None, name: str = "poller") -> None:
        super().__init__(mailbox=mailbox, name=name)
        self.mirror = mirror
        self.client = client
        self.position = position
        self.interval = interval
        self.metrics = metrics
        most = max(0.05, min(self.RETRY_MAX, interval))
        self._retry = Backoff(initial=min(0.2, most), maximum=most)
        self._failing = False          # the last read failed
        self._routine_retry = False    # a retry of a routine poll is scheduled
        self._nursery: trio.Nursery | None = None

    async def background(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        nursery.start_soon(self._tick)

    async def _tick(self) -> None:
        while True:
            await trio.sleep(self.interval)
            await self.ref.tell(PollNow("timer"))

    async def handle(self, message) -> object:
        if not isinstance(message, PollNow):
            raise TypeError(f"poller: unexpected message {message!r}")
        if self.ref.mailbox.pending and message.trigger in ("timer", "announce") \
                and not self._failing:
            # another poll is queued right behind this one: let it do the work (a burst of
            # announcements costs sie-config one read per drain, not one each). Never skip an
            # asked poll: the mirror waits for the answer with that trigger (a held delta's
            # "verify" read, the check after a reconnect). Nor a routine one after failures: its
            # answer is the "recovered" the mirror must hear
            return None
        held = self.position()
        try:
            report = await self.client.epoch()
        except ConfigReadError as exc:
            self.metrics.poll(message.trigger, exc.reason)
            log.log(logging.DEBUG if self._failing else logging.INFO,
                    "epoch poll (%s) failed: %s", message.trigger, exc.message)
            self._failing = True
            self._retry_soon(message)
            return None
        self._retry.reset()
        trigger = message.trigger
        if trigger == "timer":
            # the first routine answer after failures says so, even when an asked read's retry
            # got through first (that answer keeps its own trigger: the mirror waits for it)
            if self._failing:
                trigger = "recovered"
            self._failing = False
        self.metrics.poll(trigger, "ok")
        await self.mirror.tell(EpochObserved(report, held, trigger, message.ask))
        if self._failing and not self._routine_retry:
            # an asked read got through after failures and no routine retry is on its way:
            # ask for the routine read whose answer says "recovered" (never waiting on our own
            # mailbox: a full one already holds polls)
            with contextlib.suppress(MailboxFull):
                self.ref.tell_nowait(PollNow("timer"))
        return None

    def _retry_soon(self, message: PollNow) -> None:
        """Retry a failed read soon: an asked one with its number (the mirror waits for that
        answer), a routine one once (a chain per timer tick would pile up while sie-config is
        away)."""
        routine = message.trigger == "timer"
        if routine:
            if self._routine_retry:
                return
            self._routine_retry = True

        async def later() -> None:
            await trio.sleep(self._retry.next_delay())
            if routine:
                self._routine_retry = False
            await self.ref.tell(message)
        assert self._nursery is not None
        self._nursery.start_soon(later)


def delta_feed(link: NatsLink, subject: str, mirror: ActorRef):
    """A supervised child that moves one subject's messages, as received, into a mirror."""
    async def forward(raw: bytes) -> None:
        await mirror.tell(DeltaReceived(raw))
    return subject_pump(link, subject, forward)


def started_feed(link: NatsLink, poller: ActorRef, trusted: tuple[str, ...]):
    """A supervised child: sie-config's started announcements, from a trusted producer, become
    an epoch poll now (trigger ``announce``; the mirror fetches at once if it is behind)."""
    async def forward(raw: bytes) -> None:
        if is_trusted_producer(announcer(raw), trusted):
            await poller.tell(PollNow("announce"))
    return subject_pump(link, STARTED_SUBJECT, forward)


def subject_pump(link: NatsLink, subject: str, forward):
    """A supervised child that moves one subject's messages into ``forward``."""
    async def run(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        messages = await link.subscribe(subject)
        task_status.started()
        async with messages:  # closing it on exit ends the subscription (no stale twin)
            async for raw in messages:
                await forward(raw)
    return run

"""The fleet page's live feed: one watcher per gateway, shared by every open page.

Why polling a signature instead of hooks: the facts live in objects other parts own and rewrite
(the mirror cell, worker sessions, the NATS link, the metrics the mirror and link already keep).
Reading them through their public surface every `tick` keeps this module out of their code, and
comparing a cheap `fleet.signature` (no ages, no JSON) costs about a millisecond per tick on a
1,000-worker fleet, paid once per gateway however many pages are open. Only when the signature
changes is a snapshot built and serialized, once, and every page gets the same bytes.

Latency and cost: a change is seen within `tick` (0.25 s); snapshots are at least `min_gap`
(0.5 s) apart, so a burst of changes (a rollout across 1,000 workers) is coalesced into two
snapshots a second at most, and a page sees any change within about 0.75 s. With no page open,
the watcher only follows the cheap counters (resyncs, model arrival order) and builds nothing.

Where the facts come from:
- the mirror's state: `MirrorCell.current` (a new object on every change);
- workers: `WorkerDirectory.views()`;
- NATS connected and resyncs by cause: the gateway's own metrics (`nats_connected`,
  `config_resyncs`), the one place the link and the mirror already publish them;
- sie-config's epoch: the poller's reports, read by `EpochTap` on their way to the mirror;
- peer gateways: `PeerWatch`, which reads each peer's `/v1/configs/sync` server-side (one fetch
  per gateway, not one per page; no cross-origin requests or peer tokens in browsers).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Iterable

import httpx
import orjson
import trio

from sie_actors.http.auth import auth_headers
from sie_actors.runtime.supervisor import ChildSpec

from sie_actors.domain.sync import EpochReport

from sie_gateway.fleet import Arrivals, LinkFacts, PeerReport, fleet_snapshot, signature

if TYPE_CHECKING:
    from sie_gateway.mirror import MirrorState
    from sie_gateway.workers import WorkerView

log = logging.getLogger("sie_gateway.fleet")

KEEPALIVE = 10.0  # an empty line this often on an idle stream, so a page can tell a dead link


def _samples(metric) -> list:
    return [s for family in metric.collect() for s in family.samples]


class EpochTap:
    """Stands in for the mirror's ref in front of the poller: notes each report of sie-config's
    epoch (a message carrying an `EpochReport` as `.report`) and passes every message on."""

    def __init__(self, target, on_report: Callable) -> None:
        self.target = target
        self.on_report = on_report

    async def tell(self, message) -> None:
        report = getattr(message, "report", None)
        if isinstance(report, EpochReport):
            self.on_report(report)
        await self.target.tell(message)

    def __getattr__(self, name):  # anything else a ref offers
        return getattr(self.target, name)


class LinkWatch:
    """Keeps `LinkFacts` current from the sources above (no I/O except the peers)."""

    def __init__(self, *, name: str, config_url: str | None, nats_configured: bool,
                 metrics=None) -> None:
        self.facts = LinkFacts(name=name, config_url=config_url, nats_configured=nats_configured)
        self.metrics = metrics
        self._resync_counts: dict[str, float] = {}

    def on_report(self, report) -> None:
        self.facts = replace(self.facts, source_epoch=report.epoch,
                             source_generation=report.generation, source_at=trio.current_time())

    def on_peers(self, peers: tuple[PeerReport, ...]) -> None:
        self.facts = replace(self.facts, peers=peers)

    def refresh(self) -> LinkFacts:
        if self.metrics is None:
            return self.facts
        connected = any(s.value >= 1 for s in _samples(self.metrics.nats_connected))
        counts = {s.labels.get("cause", ""): s.value for s in _samples(self.metrics.resyncs)
                  if s.name.endswith("_total")}
        facts = self.facts
        if connected != facts.nats_connected:
            facts = replace(facts, nats_connected=connected)
        risen = [cause for cause, value in counts.items()
                 if value > self._resync_counts.get(cause, 0)]
        if risen:
            facts = replace(facts, resyncs=int(sum(counts.values())),
                            last_resync_cause=risen[-1], last_resync_at=trio.current_time())
            self._resync_counts = counts
        self.facts = facts
        return facts


class PeerWatch:
    """Reads every peer gateway's `/v1/configs/sync` every `interval` seconds."""

    def __init__(self, urls: Iterable[str], token: str | None, interval: float,
                 on_peers: Callable[[tuple[PeerReport, ...]], None]) -> None:
        self.urls = tuple(urls)
        self.headers = auth_headers(token)
        self.interval = interval
        self.on_peers = on_peers

    async def _one(self, client: httpx.AsyncClient, url: str) -> PeerReport:
        now = trio.current_time()
        try:
            response = await client.get(url + "/v1/configs/sync")
            if response.status_code != 200:
                return PeerReport(url, error=f"HTTP {response.status_code}", at=now)
            body = response.json()
            return PeerReport(url, epoch=int(body.get("epoch", 0)),
                              generation=str(body.get("generation") or ""),
                              bootstrapped=bool(body.get("bootstrapped")), at=now)
        except (httpx.HTTPError, ValueError, TypeError, AttributeError) as exc:
            return PeerReport(url, error=type(exc).__name__, at=now)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.on_peers(tuple(PeerReport(url) for url in self.urls))
        task_status.started()
        async with httpx.AsyncClient(headers=self.headers, timeout=min(5.0, self.interval + 1)
                                     ) as client:
            while True:
                reports: dict[str, PeerReport] = {}

                async def fetch(url: str) -> None:
                    reports[url] = await self._one(client, url)
                async with trio.open_nursery() as nursery:
                    for url in self.urls:
                        nursery.start_soon(fetch, url)
                self.on_peers(tuple(reports[url] for url in self.urls))
                await trio.sleep(self.interval)


class FleetFeed:
    def __init__(self, read_state: Callable[[], MirrorState],
                 read_views: Callable[[], Iterable[WorkerView]], links: LinkWatch, *,
                 heartbeat_timeout: float, tick: float = 0.25, min_gap: float = 0.5) -> None:
        self.read_state = read_state
        self.read_views = read_views
        self.links = links
        self.heartbeat_timeout = heartbeat_timeout
        self.tick = tick
        self.min_gap = min_gap
        self.arrivals = Arrivals()
        self.body = b""
        self.version = 0
        self.watchers = 0
        self.snapshots = 0  # built so far (for tests and the bench)
        self.cpu_seconds = 0.0  # this thread's CPU spent comparing and building (the feed's cost)
        self.on_work: Callable[[float], None] | None = None
        self.on_snapshot: Callable[[], None] | None = None
        self._published = trio.Event()
        self._kick = trio.Event()
        self._force = False

    def snapshot(self) -> dict:
        """A fresh snapshot now (the one-shot `GET /v1/fleet`)."""
        state = self.read_state()
        self.arrivals.observe(state)
        return fleet_snapshot(state, self.read_views(), trio.current_time(),
                              self.heartbeat_timeout, self.links.refresh(), self.arrivals.ranks)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last_sig = None
        last_sent = -math.inf
        while True:
            with trio.move_on_after(self.tick):
                await self._kick.wait()
            self._kick = trio.Event()
            state = self.read_state()
            self.arrivals.observe(state)
            facts = self.links.refresh()
            if self.watchers == 0:
                last_sig = None
                continue
            started = time.thread_time()  # trio runs here alone: this is the feed's own CPU
            try:
                now = trio.current_time()
                views = list(self.read_views())
                sig = signature(state, views, now, self.heartbeat_timeout, facts)
                if sig == last_sig and not self._force:
                    continue
                if now < last_sent + self.min_gap and not self._force:
                    self._kick.set()  # after the gap, look again: more may have changed
                    wait = last_sent + self.min_gap - now
                else:
                    wait = 0.0
                    self._force = False
                    body = fleet_snapshot(state, views, now, self.heartbeat_timeout, facts,
                                          self.arrivals.ranks)
                    self._publish(orjson.dumps(body) + b"\n")
                    last_sig, last_sent = sig, now
            finally:
                self._account(time.thread_time() - started)
            if wait:
                await trio.sleep(wait)

    def _account(self, seconds: float) -> None:
        self.cpu_seconds += seconds
        if self.on_work is not None:
            self.on_work(seconds)

    def _publish(self, body: bytes) -> None:
        self.body = body
        self.version += 1
        self.snapshots += 1
        if self.on_snapshot is not None:
            self.on_snapshot()
        self._published.set()
        self._published = trio.Event()

    async def stream(self):
        """NDJSON for one page: a snapshot at once, then one per change, an empty line when idle.

        A slow page never queues snapshots: it is sent the latest when it is ready again."""
        self.watchers += 1
        seen = self.version
        self._force = True
        self._kick.set()
        try:
            while True:
                if self.version == seen:
                    with trio.move_on_after(KEEPALIVE):
                        await self._published.wait()
                if self.version == seen:
                    yield b"\n"
                    continue
                seen = self.version
                yield self.body
        finally:
            self.watchers -= 1


class FleetWiring:
    """What `main.run_service` adds for the fleet page, in one place: the feed, the link facts,
    the peer poller, and the tap in front of the mirror for the poller's reports."""

    def __init__(self, settings, cell, directory, metrics, *, nats_configured: bool) -> None:
        self.links = LinkWatch(name=settings.name, config_url=settings.config_url,
                               nats_configured=nats_configured, metrics=metrics)
        self.feed = FleetFeed(lambda: cell.current, directory.views, self.links,
                              heartbeat_timeout=settings.heartbeat_timeout)
        self.children = [ChildSpec("fleet", self.feed.run)]
        if metrics is not None:
            self.feed.on_work = metrics.counter(
                "fleet_feed_cpu_seconds", "CPU seconds the fleet page feed spent comparing and "
                "building snapshots").inc
            self.feed.on_snapshot = metrics.counter(
                "fleet_snapshots", "Fleet page snapshots built and sent").inc
            metrics.gauge("fleet_streams", "Open fleet page feeds").set_function(
                lambda: self.feed.watchers)
        if settings.peers:
            peers = PeerWatch(settings.peers, settings.outbound_token, settings.poll_interval,
                              self.links.on_peers)
            self.children.append(ChildSpec("peers", peers.run))

    def tap(self, mirror_ref) -> EpochTap:
        return EpochTap(mirror_ref, self.links.on_report)

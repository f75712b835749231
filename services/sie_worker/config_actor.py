"""BundleConfigActor: the one owner of the worker's registry, epoch and readiness.

Messages (frozen dataclasses, see below): a delta from NATS, an epoch observation from the
poller, a resync request, a fetched snapshot (from the actor's own fetch loop), shutdown. After
each change the actor publishes a new :class:`~sie_worker.view.WorkerView`; HTTP and WebSocket
code only read it.

Sync protocol:

* While a (re)sync is in flight, deltas are buffered, not applied: the snapshot being fetched
  may or may not contain them. Once the snapshot is installed, the buffer is replayed in epoch
  order through the normal rules (duplicates drop out, a gap starts another resync).
* The fetch loop runs beside the mailbox (``background``), retries with capped exponential
  backoff and jitter, and reports back with ``SnapshotFetched``. A poll answer that arrives
  while it waits proves sie-config is reachable and cuts the wait short.
* Without ``SIE_CONFIG_SERVICE_URL`` there is nobody to resync from: the worker is ready on its
  seed at once, applies deltas in order as they come and logs the gaps it cannot close.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import trio

from sie_actors.domain.bundle import Bundle
from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import parse_stored_model_yaml
from sie_actors.domain.registry import Registry
from sie_actors.domain.sync import DeltaVerdict, EpochReport, MirrorPosition, hash_agrees
from sie_actors.runtime import Actor, Backoff, Mailbox

from sie_worker.metrics import WorkerMetrics
from sie_worker.source import ConfigSource, FetchError
from sie_worker.sync import (BundleSnapshot, classify_delta, drift_cause, registry_from_snapshot,
                             replay_order)
from sie_worker.view import ViewCell

log = logging.getLogger("sie_worker.config")


# ---- messages ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeltaArrived:
    """A trusted, well-formed delta from ``sie.config.models.{bundle}``."""

    delta: ConfigDelta


@dataclass(frozen=True)
class EpochObserved:
    """sie-config's epoch endpoint answered; ``trigger`` is ``timer`` or ``reconnect``."""

    info: EpochReport
    trigger: str = "timer"


@dataclass(frozen=True)
class ResyncRequested:
    cause: str


@dataclass(frozen=True)
class SnapshotFetched:
    """Sent by the fetch loop; ``seq`` names the sync round it answers."""

    seq: int
    snapshot: BundleSnapshot
    registry: Registry


@dataclass(frozen=True)
class ShutDown:
    """Report not-ready from now on (graceful stop)."""


# ---- the actor --------------------------------------------------------------------------------

class BundleConfigActor(Actor):
    """Owns the registry; a fresh incarnation resumes from the last published view."""

    def __init__(self, cell: ViewCell, *, local_bundles: Sequence[Bundle],
                 source: ConfigSource | None, metrics: WorkerMetrics,
                 backoff_initial: float = 0.2, backoff_max: float = 5.0,
                 buffer_limit: int = 4096, mailbox: Mailbox | None = None) -> None:
        super().__init__(mailbox=mailbox, name="bundle-config")
        view = cell.current
        self.cell = cell
        self.bundle = view.identity.bundle
        self.local_bundles = tuple(local_bundles)
        self.source = source
        self.metrics = metrics
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.buffer_limit = buffer_limit
        # state: everything below belongs to this actor alone
        self.registry = view.registry
        self.epoch = view.epoch
        self.generation = view.generation
        self.bootstrapped = view.bootstrapped
        self.closing = view.closing
        self._syncing = False
        self._sync_seq = 0
        self._buffer: list[ConfigDelta] = []
        self._overflowed = False
        self._pending_observation: EpochReport | None = None
        self._requests_send, self._requests_receive = trio.open_memory_channel[int](16)

    # ---- derived facts ------------------------------------------------------------------------
    @property
    def position(self) -> MirrorPosition:
        return MirrorPosition(self.epoch, self.generation)

    @property
    def own_hash(self) -> str:
        return self.registry.bundle_config_hash(self.bundle)

    @property
    def can_resync(self) -> bool:
        return self.source is not None

    @property
    def syncing(self) -> bool:
        return self._syncing

    def _ready(self) -> bool:
        return (self.bootstrapped or self.source is None) and not self.closing

    # ---- lifecycle ----------------------------------------------------------------------------
    async def on_start(self) -> None:
        if self.source is not None and not self.closing:
            self._start_sync("startup" if not self.bootstrapped else "restart")

    async def background(self, nursery: trio.Nursery) -> None:
        if self.source is not None:
            nursery.start_soon(self._fetch_loop)

    # ---- messages -----------------------------------------------------------------------------
    async def handle(self, message: object) -> object:
        if isinstance(message, DeltaArrived):
            self._on_delta(message.delta)
        elif isinstance(message, EpochObserved):
            self._on_observation(message.info)
        elif isinstance(message, SnapshotFetched):
            self._on_snapshot(message)
        elif isinstance(message, ResyncRequested):
            if self.can_resync:
                self._start_sync(message.cause)
        elif isinstance(message, ShutDown):
            self.closing = True
            self._publish()
        else:
            raise TypeError(f"bundle-config: unexpected message {message!r}")
        return None

    def _on_delta(self, delta: ConfigDelta) -> None:
        if self._syncing:
            if len(self._buffer) < self.buffer_limit:
                self._buffer.append(delta)
                self._count("buffered")
            else:
                self._overflowed = True
                self._count("dropped_buffer_full")
            return
        verdict = classify_delta(self.position, delta, self.bundle)
        if verdict is None:
            self._count("wrong_bundle")
            log.warning("delta epoch %d for bundle %r on our subject; ignored",
                        delta.epoch, delta.bundle_id)
            return
        if verdict in (DeltaVerdict.STALE, DeltaVerdict.DUPLICATE):
            self._count("stale")
            log.debug("delta epoch %d <= local %d: duplicate, ignored", delta.epoch, self.epoch)
            return
        if verdict is DeltaVerdict.GAP and self._closes_gap(delta):
            return
        if verdict in (DeltaVerdict.GAP, DeltaVerdict.GENERATION):
            self._count(verdict.value)
            if self.can_resync:
                log.info("delta epoch %d (generation %s) at local epoch %d (generation %s): %s, "
                         "resyncing", delta.epoch, delta.generation or '""', self.epoch,
                         self.generation or '""', verdict.value)
                self._buffer.append(delta)
                self._start_sync(verdict.value)
                return
            log.warning("delta epoch %d at local epoch %d (%s) and no SIE_CONFIG_SERVICE_URL to "
                        "resync from: applying it as is", delta.epoch, self.epoch, verdict.value)
        self._apply(delta)

    def _closes_gap(self, delta: ConfigDelta) -> bool:
        """Take a delta across an epoch gap when its hash proves nothing of ours was missed.

        Our subject carries only this bundle's writes, so the epochs of other bundles' writes
        are gaps here: most gaps are not losses (sie-chaos saw a full snapshot fetched for more
        than half of all deltas). The delta's `bundle_config_hash` covers the whole bundle: if
        applying the delta to our registry reproduces it, we hold exactly sie-config's bundle at
        that epoch. Otherwise (a write of ours was lost, or no hash) resync as before.
        """
        if not (self.bootstrapped and self.can_resync and delta.bundle_config_hash
                and delta.generation and delta.generation == self.generation
                and delta.bundle_id == self.bundle):
            return False
        try:
            registry, plan = self.registry.append(parse_stored_model_yaml(delta.model_config))
        except DomainError:
            return False
        if registry.bundle_config_hash(self.bundle) != delta.bundle_config_hash:
            return False
        self.registry = registry
        self._advance(delta)
        self._publish()
        self._count("applied_over_gap")
        log.info("applied epoch %d over a gap (other bundles' writes): %s %s, "
                 "bundle_config_hash %s", delta.epoch, plan.model_id,
                 list(plan.created_profiles), delta.bundle_config_hash[:12])
        return True

    def _apply(self, delta: ConfigDelta) -> None:
        try:
            registry, plan = self.registry.append(parse_stored_model_yaml(delta.model_config))
        except DomainError as exc:
            self._count("apply_failed")
            log.error("delta epoch %d for %s could not be applied: %s", delta.epoch,
                      delta.model_id, exc.message)
            if self.can_resync:
                self._start_sync("apply_failed")
            else:
                self._advance(delta)  # later deltas must not all look like gaps
                self._publish()
            return
        self.registry = registry
        self._advance(delta)
        self._publish()
        self._count("applied")
        own = self.own_hash
        log.info("applied epoch %d: %s %s, bundle_config_hash %s", delta.epoch, plan.model_id,
                 list(plan.created_profiles), own[:12])
        if (not delta.bundle_id or delta.bundle_id == self.bundle) and not hash_agrees(
                delta.bundle_config_hash, own):
            self._count("hash_mismatch")
            log.warning("after epoch %d our bundle_config_hash %s differs from sie-config's %s",
                        delta.epoch, own[:12], delta.bundle_config_hash[:12])
            if self.can_resync:
                self._start_sync("hash_mismatch")

    def _advance(self, delta: ConfigDelta) -> None:
        self.epoch = delta.epoch
        if delta.generation:
            self.generation = delta.generation

    def _on_observation(self, info: EpochReport) -> None:
        if self._syncing:
            # sie-config answers: retry a fetch waiting in backoff now; judge drift afterwards.
            self._pending_observation = info
            self._request_fetch()
            return
        cause = drift_cause(self.position, self.own_hash, info, self.bundle)
        if cause is not None:
            log.info("sie-config at epoch %d (generation %s, hash %s), local epoch %d "
                     "(generation %s, hash %s): %s", info.epoch, info.generation or '""',
                     (info.bundle_config_hashes.get(self.bundle) or "-")[:12], self.epoch, self.generation or '""',
                     self.own_hash[:12], cause)
            self._start_sync(cause)

    def _on_snapshot(self, message: SnapshotFetched) -> None:
        if not self._syncing or message.seq != self._sync_seq:
            log.debug("dropping snapshot of sync round %d (current %d, syncing %s)",
                      message.seq, self._sync_seq, self._syncing)
            return
        snapshot = message.snapshot
        first = not self.bootstrapped
        self.registry = message.registry
        self.epoch = snapshot.epoch
        self.generation = snapshot.generation
        self.bootstrapped = True
        self._syncing = False
        own = self.own_hash
        self.metrics.bootstraps.inc()
        for model_id, reason in snapshot.skipped:
            log.warning("snapshot entry %s skipped: %s", model_id, reason)
        if snapshot.bundle_config_hash and own != snapshot.bundle_config_hash:
            self.metrics.snapshot_hash_mismatches.inc()
            log.error("snapshot epoch %d: computed bundle_config_hash %s but sie-config says %s",
                      snapshot.epoch, own, snapshot.bundle_config_hash)
        log.info("%s from sie-config: epoch %d, generation %s, %d models, bundle_config_hash %s",
                 "bootstrapped" if first else "resynced", snapshot.epoch,
                 snapshot.generation or '""', len(self.registry.models_in_bundle(self.bundle)),
                 own[:12])
        self._publish()
        buffered, self._buffer = replay_order(self._buffer), []
        for delta in buffered:
            self._on_delta(delta)
        observation, self._pending_observation = self._pending_observation, None
        if observation is not None and not self._syncing:
            self._on_observation(observation)
        if self._overflowed and not self._syncing:
            self._overflowed = False
            self._start_sync("buffer_overflow")

    # ---- syncing ------------------------------------------------------------------------------
    def _start_sync(self, cause: str) -> None:
        self.metrics.resyncs.labels(cause).inc()
        if self._syncing:
            return
        self._syncing = True
        self._sync_seq += 1
        self._request_fetch()
        self._publish()

    def _request_fetch(self) -> None:
        try:
            self._requests_send.send_nowait(self._sync_seq)
        except trio.WouldBlock:
            pass  # a request is already queued; the fetch loop reads the latest anyway

    async def _fetch_loop(self) -> None:
        assert self.source is not None
        backoff = Backoff(initial=self.backoff_initial, maximum=self.backoff_max)
        done = 0
        while True:
            seq = self._latest(await self._requests_receive.receive())
            if seq <= done:
                continue
            backoff.reset()
            failures = 0
            while True:
                try:
                    snapshot = await self.source.fetch_snapshot()
                    registry = registry_from_snapshot(snapshot, self.local_bundles)
                    break
                except FetchError as exc:
                    failures += 1
                    self.metrics.bootstrap_failures.labels(exc.reason).inc()
                    delay = backoff.next_delay()
                    (log.warning if failures == 1 else log.debug)(
                        "snapshot fetch failed (attempt %d, retry in %.2fs): %s",
                        failures, delay, exc.message)
                    with trio.move_on_after(delay):
                        seq = max(seq, self._latest(await self._requests_receive.receive()))
            if failures:
                log.info("snapshot fetched after %d failed attempts", failures)
            done = seq
            await self.ref.tell(SnapshotFetched(seq, snapshot, registry))

    def _latest(self, seq: int) -> int:
        while True:
            try:
                seq = max(seq, self._requests_receive.receive_nowait())
            except trio.WouldBlock:
                return seq

    # ---- publishing ---------------------------------------------------------------------------
    def _publish(self) -> None:
        view = self.cell.current.evolve(
            registry=self.registry, epoch=self.epoch, generation=self.generation,
            bootstrapped=self.bootstrapped, ready=self._ready(), closing=self.closing,
            syncing=self._syncing)
        self.cell.publish(view)
        self.metrics.on_view(view)

    def _count(self, result: str) -> None:
        self.metrics.deltas.labels(result).inc()

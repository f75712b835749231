"""RegistryMirrorActor: owns the gateway's copy of the registry and keeps it equal to sie-config.

It is the only writer of `MirrorCell.current`. Everything that can change the mirror arrives as a
message, processed one at a time: a delta from `sie.config.models._all`, an epoch observed by the
poller, a resync request. Deltas are applied strictly in epoch order (`domain.sync.judge_delta`);
a gap, another generation, an epoch behind ours, a delta that fails to apply or a hash that
disagrees with ours after applying all trigger an immediate resync (a full snapshot from
sie-config), counted by cause. A failed resync is retried with capped backoff and jitter while the
gateway keeps serving what it has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import orjson
import trio

from sie_actors.domain.delta import ConfigDelta, is_trusted_producer
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import parse_stored_model_yaml
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import SOURCE_GATEWAY, model_summary
from sie_actors.domain.sync import (DeltaVerdict, Drift, EpochReport, MirrorPosition,
                                    hash_agrees, judge_delta, judge_epoch)
from sie_actors.runtime import Actor, Backoff

from sie_gateway.bootstrap import BootstrapFailed, fetch_snapshot

log = logging.getLogger("sie_gateway.mirror")


@dataclass(frozen=True, eq=False)
class MirrorState:
    registry: Registry
    position: MirrorPosition
    bootstrapped: bool  # a snapshot from sie-config was applied at least once

    @cached_property
    def models_body(self) -> bytes:
        return orjson.dumps({"models": [model_summary(e, SOURCE_GATEWAY)
                                        for e in self.registry.list_models()]})


class MirrorCell:
    def __init__(self, state: MirrorState) -> None:
        self.current = state


# ---- messages --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeltaReceived:
    raw: bytes


@dataclass(frozen=True)
class EpochObserved:
    report: EpochReport


@dataclass(frozen=True)
class Resync:
    cause: str


class RegistryMirrorActor(Actor):
    def __init__(self, cell: MirrorCell, *, config_url: str | None, token: str | None,
                 trusted: tuple[str, ...], timeout: float, metrics, mailbox=None,
                 backoff: Backoff | None = None) -> None:
        super().__init__(mailbox=mailbox, name="mirror")
        self.cell = cell
        self.config_url = config_url
        self.token = token
        self.trusted = trusted
        self.timeout = timeout
        self.metrics = metrics
        self.backoff = backoff or Backoff(initial=0.2, maximum=10.0)
        self._retry = trio.Event()  # set while a resync is owed; the retry loop waits on it
        self._pending_cause: str | None = None

    async def on_start(self) -> None:
        if self.config_url and not self.cell.current.bootstrapped:
            self._owe_resync("startup")

    async def background(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._retry_loop)

    async def handle(self, message) -> object:
        if isinstance(message, DeltaReceived):
            await self._on_delta(message.raw)
        elif isinstance(message, EpochObserved):
            await self._on_epoch(message.report)
        elif isinstance(message, Resync):
            await self._resync(message.cause)
        else:
            raise TypeError(f"mirror: unexpected message {message!r}")
        return None

    # ---- deltas ------------------------------------------------------------------------------
    async def _on_delta(self, raw: bytes) -> None:
        try:
            delta = ConfigDelta.from_json(raw)
        except DomainError as exc:
            self._count_delta("unknown", "parse_error")
            log.warning("dropping malformed delta: %s", exc.message)
            return
        kind = "model_added" if delta.model_config.strip() else "epoch_bump"
        if not is_trusted_producer(delta.router_id, self.trusted):
            self._count_delta(kind, "rejected_untrusted")
            log.warning("dropping delta from untrusted producer %r", delta.router_id)
            return
        state = self.cell.current
        verdict = judge_delta(state.position, delta.epoch, delta.generation)
        if self.config_url is None and verdict in (DeltaVerdict.GAP, DeltaVerdict.GENERATION):
            verdict = DeltaVerdict.APPLY  # no sie-config to resync from: best effort, in order
        if verdict is DeltaVerdict.STALE:
            self._count_delta(kind, "stale")
            return
        if verdict in (DeltaVerdict.GAP, DeltaVerdict.GENERATION):
            self._count_delta(kind, verdict.value)
            await self._resync(verdict.value)
            return
        if verdict is DeltaVerdict.APPLY:
            if kind == "model_added":
                try:
                    registry, _plan = state.registry.append(
                        parse_stored_model_yaml(delta.model_config))
                except DomainError as exc:
                    self._count_delta(kind, "apply_error")
                    log.warning("delta epoch %d for %s did not apply (%s); resyncing",
                                delta.epoch, delta.model_id, exc.message)
                    await self._resync("apply_error")
                    return
            else:
                registry = state.registry
            state = MirrorState(registry,
                                MirrorPosition(delta.epoch, delta.generation
                                               or state.position.generation),
                                state.bootstrapped)
            self._publish(state)
            self._count_delta(kind, "applied")
        else:
            self._count_delta(kind, "duplicate")
        if delta.bundle_id:
            own = state.registry.bundle_config_hash(delta.bundle_id)
            if not hash_agrees(delta.bundle_config_hash, own):
                log.warning("bundle %s hash after epoch %d is %s, sie-config says %s; resyncing",
                            delta.bundle_id, delta.epoch, own[:12], delta.bundle_config_hash[:12])
                await self._resync("hash_mismatch")

    # ---- epoch poll --------------------------------------------------------------------------
    async def _on_epoch(self, report: EpochReport) -> None:
        state = self.cell.current
        if not state.bootstrapped:
            return  # the retry loop is already on it
        drift = judge_epoch(state.position, report,
                            own_bundles_hash=state.registry.bundles_hash,
                            own_bundle_hashes=state.registry.bundle_config_hashes())
        if drift is not Drift.NONE:
            log.info("epoch poll found drift (%s): local %s, remote epoch %d", drift.value,
                     state.position, report.epoch)
            await self._resync(drift.value)

    # ---- resync ------------------------------------------------------------------------------
    async def _resync(self, cause: str) -> None:
        if self.config_url is None:
            return
        if self.metrics is not None:
            self.metrics.resyncs.labels(cause).inc()
        try:
            snapshot = await fetch_snapshot(self.config_url, self.token, self.timeout)
        except BootstrapFailed as exc:
            if self.metrics is not None:
                self.metrics.bootstrap_failures.inc()
            log.warning("resync (%s) failed: %s", cause, exc)
            self._owe_resync(cause)
            return
        for model_id, reason in snapshot.skipped:
            log.warning("snapshot entry %s not applied: %s", model_id, reason)
        state = MirrorState(snapshot.registry,
                            MirrorPosition(snapshot.epoch, snapshot.generation), True)
        self._publish(state)
        self._pending_cause = None  # a retry still queued in the loop becomes a no-op
        self.backoff.reset()
        log.info("resynced (%s): epoch %d, generation %s, %d models", cause, snapshot.epoch,
                 snapshot.generation or "-", len(snapshot.registry.list_models()))

    def _owe_resync(self, cause: str) -> None:
        self._pending_cause = cause
        self._retry.set()

    async def _retry_loop(self) -> None:
        """Turns an owed resync into a Resync message: at once at startup, else after backoff."""
        while True:
            await self._retry.wait()
            self._retry = trio.Event()
            cause, self._pending_cause = self._pending_cause, None
            if cause is None:
                continue
            if cause != "startup":
                await trio.sleep(self.backoff.next_delay())
                cause = "retry"
            await self.ref.tell(Resync(cause))

    # ---- publishing --------------------------------------------------------------------------
    def _publish(self, state: MirrorState) -> None:
        self.cell.current = state
        if self.metrics is not None:
            self.metrics.on_state(state)

    def _count_delta(self, kind: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.deltas.labels(kind, result).inc()

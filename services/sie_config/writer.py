"""WriterActor: the single writer. Its serial mailbox is the write lock.

One write, in order: refuse early if NATS is configured but down (nothing persisted), replay or
refuse by Idempotency-Key, parse and validate against the current snapshot, check append-only
content rules, persist crash-consistently (epoch first, then the model document), publish the new
snapshot for readers, publish deltas and wait for NATS to confirm them, reply. Any failure before
persisting changes nothing; a store failure is 503 `store_unavailable` with nothing applied or
published.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import orjson
import trio

from sie_actors.actors.publisher import FAILED_WARNING, PublishDeltas, PublishResult
from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.conflicts import check_content_conflicts
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.domain.registry import AppendPlan
from sie_actors.runtime import Actor, ActorRef
from sie_actors.store import ConfigStore, StoreUnavailable

from sie_config.idempotency import Failure, IdempotencyBook, Remembered, body_digest
from sie_config.state import ConfigState

log = logging.getLogger("sie_config.writer")

NATS_UNAVAILABLE = {"error": "nats_unavailable",
                    "message": "NATS not connected -- cannot distribute config changes."}


class StateCell:
    """Where the writer publishes each new ConfigState; readers only read `current`."""

    def __init__(self, state: ConfigState) -> None:
        self.current = state


@dataclass(frozen=True)
class WriteModel:
    body: bytes
    idempotency_key: str | None = None
    dry_run: bool = False
    ticket: int = 0  # the writer's completion count when the request was sent


@dataclass(frozen=True)
class WriteOutcome:
    """``model_id``: the model the request named, once its body parsed (refusals included);
    ``None`` for a replay of a remembered answer, which is not a new write."""

    status: int
    body: bytes
    model_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)

    @property
    def error_code(self) -> str | None:
        """The ``detail.error`` of a refusal (our own body, so it is always there)."""
        if self.ok:
            return None
        try:
            detail = orjson.loads(self.body).get("detail")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return detail.get("error") if isinstance(detail, dict) else None


def error_outcome(status: int, detail, model_id: str | None = None) -> WriteOutcome:
    return WriteOutcome(status, orjson.dumps({"detail": detail}), model_id=model_id)


def named_model(config: object) -> str | None:
    """The ``sie_id`` a parsed body names, for audit lines; ``None`` if it names none."""
    model_id = config.get("sie_id") if isinstance(config, dict) else None
    return model_id if isinstance(model_id, str) and model_id else None


class WriterActor(Actor):
    def __init__(self, cell: StateCell, book: IdempotencyBook, *, store: ConfigStore | None,
                 router_id: str, publisher: ActorRef | None = None,
                 nats_connected: Callable[[], bool] | None = None,
                 idempotency_ttl: float = 86400.0, metrics=None, publish_timeout: float = 5.0,
                 mailbox=None) -> None:
        # `book` lives outside the actor so that a restarted incarnation keeps the completion
        # count and the remembered keys.
        super().__init__(mailbox=mailbox, name="writer")
        self.cell = cell
        self.store = store
        self.router_id = router_id
        self.publisher = publisher  # ActorRef of the PublisherActor, or None (standalone)
        self.nats_connected = nats_connected
        self.book = book
        self.idempotency_ttl = idempotency_ttl
        self.metrics = metrics
        self.publish_timeout = publish_timeout

    @property
    def response_router_id(self) -> str:
        return self.router_id if self.publisher is not None else "standalone"

    async def handle(self, message: WriteModel) -> WriteOutcome:
        try:
            outcome = await self._write(message)
        except DomainError as exc:
            outcome = error_outcome(exc.status, exc.detail())
        finally:
            self.book.completed += 1
        key = message.idempotency_key
        if key and not message.dry_run and not outcome.ok:
            self.book.remember_failure(key, Failure(self.book.completed, outcome.status,
                                                    outcome.body))
        return outcome

    async def _write(self, msg: WriteModel) -> WriteOutcome:
        if self.publisher is not None and not self._nats_up():
            return error_outcome(503, NATS_UNAVAILABLE)

        key = msg.idempotency_key if not msg.dry_run else None
        digest = body_digest(msg.body)
        if key:
            earlier = await self._remembered(key)
            if earlier is not None:
                if earlier.digest != digest:
                    return error_outcome(422, {"error": "idempotency_mismatch",
                                               "message": "Idempotency-Key reused with different payload."})
                return WriteOutcome(earlier.status, earlier.body, model_id=None)
            failure = self.book.failure_seen_by(key, msg.ticket)
            if failure is not None:
                return WriteOutcome(failure.status, failure.body)

        state = self.cell.current
        config = parse_model_yaml(msg.body)
        try:
            plan = state.registry.plan_append(config)
            check_content_conflicts(plan)
        except DomainError as exc:
            return error_outcome(exc.status, exc.detail(), model_id=named_model(config))

        if not plan.created_profiles:
            outcome = self._success(200, plan, warnings=(), dry_run=msg.dry_run)
        elif msg.dry_run:
            outcome = self._success(201, plan, warnings=(), dry_run=True)
        else:
            outcome = await self._commit(state, plan)
        if key and outcome.ok:
            await self._remember(key, Remembered(outcome.status, outcome.body, digest))
        return outcome

    async def _commit(self, state: ConfigState, plan: AppendPlan) -> WriteOutcome:
        yaml_text = plan.merged_yaml
        # After a failed commit the store may already hold the epoch it tried to write, so the
        # next one starts above it: an epoch is never reused for a different write.
        epoch = max(state.epoch, self.book.epoch_floor) + 1
        if self.store is not None:
            try:
                await trio.to_thread.run_sync(self.store.commit_write, plan.model_id, yaml_text,
                                              epoch)
                self._count_store("success")
            except StoreUnavailable as exc:
                self.book.epoch_floor = max(self.book.epoch_floor, epoch)
                self._count_store("failure")
                log.error("store write for %s failed: %s", plan.model_id, exc)
                return error_outcome(503, {"error": "store_unavailable",
                                           "message": f"Config store unavailable: {exc}. "
                                                      "Nothing was applied or published."},
                                     model_id=plan.model_id)
        registry = state.registry.apply(plan)
        new_state = state.with_write(registry, plan.model_id, yaml_text, epoch)
        self.cell.current = new_state
        if self.metrics is not None:
            self.metrics.on_state(new_state)
        warnings = await self._publish(new_state, plan, yaml_text)
        return self._success(201, plan, warnings=warnings, dry_run=False)

    async def _publish(self, state: ConfigState, plan: AppendPlan,
                       yaml_text: str) -> tuple[str, ...]:
        if self.publisher is None:
            return ()
        deltas = tuple(
            ConfigDelta(router_id=self.router_id, bundle_id=bundle, epoch=state.epoch,
                        bundle_config_hash=state.registry.bundle_config_hash(bundle),
                        model_id=plan.model_id, profiles_added=tuple(plan.created_profiles),
                        model_config=yaml_text, affected_bundles=tuple(plan.affected_bundles),
                        generation=state.generation)
            for bundle in plan.affected_bundles)
        try:
            result: PublishResult = await self.publisher.ask(PublishDeltas(deltas),
                                                              timeout=self.publish_timeout)
        except Exception as exc:  # a publisher crash or timeout must not turn a durable write into an error
            log.error("publishing epoch %d failed: %r", state.epoch, exc)
            return (FAILED_WARNING,)
        return result.warnings

    def _success(self, status: int, plan: AppendPlan, *, warnings, dry_run: bool) -> WriteOutcome:
        created = list(plan.created_profiles)
        body = {
            "model_id": plan.model_id,
            "created_profiles": created,
            "existing_profiles_skipped": list(plan.skipped_profiles),
            "warnings": [*plan.warnings, *warnings],
            "routable_bundles_by_profile": {p: list(plan.affected_bundles) for p in created},
            "router_id": self.response_router_id,
        }
        if dry_run:
            body["dry_run"] = True
        return WriteOutcome(status, orjson.dumps(body), model_id=plan.model_id)

    # ---- idempotency persistence ------------------------------------------------------------
    async def _remembered(self, key: str) -> Remembered | None:
        hit = self.book.success(key)
        if hit is not None or self.store is None:
            return hit
        try:
            record = await trio.to_thread.run_sync(self.store.get_idempotency, key,
                                                   self.idempotency_ttl)
        except StoreUnavailable as exc:
            log.warning("idempotency lookup failed (treated as unknown key): %s", exc)
            return None
        return Remembered.from_record(record) if record else None

    async def _remember(self, key: str, entry: Remembered) -> None:
        self.book.remember_success(key, entry)
        if self.store is None:
            return
        try:
            await trio.to_thread.run_sync(self.store.put_idempotency, key, entry.to_record())
        except StoreUnavailable as exc:
            log.warning("could not persist Idempotency-Key (kept in memory only): %s", exc)

    # ---- observability ----------------------------------------------------------------------
    def _nats_up(self) -> bool:
        return self.nats_connected() if self.nats_connected is not None else True

    def _count_store(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.store_writes.labels("write_model", result).inc()
            self.metrics.store_writes.labels("increment_epoch", result).inc()

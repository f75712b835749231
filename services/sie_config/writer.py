"""WriterActor: the single writer. Its serial mailbox is the write lock.

One write, in order: refuse early if NATS is configured but down (nothing persisted), replay or
refuse by Idempotency-Key, parse and validate against the current snapshot, check append-only
content rules and that the stored text reads back as the same config (all of it in a worker
thread: a 1 MiB body takes seconds of pure-Python parsing, which must not stall /readyz and
reads), check the deltas fit NATS's max payload, persist crash-consistently (epoch first, then
the model document), publish the new snapshot for readers together with its deltas in the
catch-up log (`StateCell.install`), publish the deltas and wait for NATS to confirm them, reply.
Any failure before persisting changes nothing; a store failure is 503 `store_unavailable` with
nothing applied or published, and a message that names no file (the details go to the log).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import orjson
import trio

from sie_actors.actors.publisher import FAILED_WARNING, PublishDeltas, PublishResult
from sie_actors.domain.delta import ConfigDelta, write_deltas
from sie_actors.domain.conflicts import check_content_conflicts
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import ensure_reads_back, parse_model_yaml
from sie_actors.domain.registry import AppendPlan, Registry
from sie_actors.runtime import Actor, ActorRef
from sie_actors.store import ConfigStore, StoreUnavailable

from sie_config.delta_log import DEFAULT_MAX_BYTES, DEFAULT_MAX_EPOCHS, DeltaLog
from sie_config.idempotency import Failure, WriterMemory, Remembered, body_digest
from sie_config.state import ConfigState

log = logging.getLogger("sie_config.writer")

NATS_UNAVAILABLE = {"error": "nats_unavailable",
                    "message": "NATS not connected -- cannot distribute config changes."}


class StateCell:
    """Where the writer publishes each new ConfigState; readers only read `current` and `log`.

    `install` changes both in one synchronous step, so a reader never sees a state whose epoch
    the delta log has not recorded (or the reverse).
    """

    def __init__(self, state: ConfigState, log: DeltaLog | None = None) -> None:
        self.current = state
        self.log = log if log is not None else DeltaLog(
            state.epoch, state.generation, max_epochs=DEFAULT_MAX_EPOCHS,
            max_bytes=DEFAULT_MAX_BYTES)

    def install(self, state: ConfigState, deltas: tuple[ConfigDelta, ...] = ()) -> None:
        """Serve ``state`` from now on; ``deltas`` are its epoch's (none: no model changed)."""
        self.current = state
        self.log.record(state.epoch, deltas)


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


STORE_UNAVAILABLE = {"error": "store_unavailable",
                     "message": "Config store unavailable: the write could not be persisted. "
                                "Nothing was applied or published."}
# Size of a bundle_config_hash (sha256 hex) in a delta; a creating write's bundle is never empty.
HASH_PLACEHOLDER = "0" * 64


class RefusedWrite(Exception):
    """A body that parsed but was refused, with the model id it names (for the audit line)."""

    def __init__(self, error: DomainError, model_id: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.model_id = model_id


def prepare_write(registry: Registry, body: bytes) -> tuple[AppendPlan, str | None]:
    """Everything about a write that needs no I/O: parse, plan, append-only rules, and the
    stored text (None for a replay that creates nothing), checked to read back the same.

    Pure and CPU-bound, so the writer runs it in a worker thread. A body that does not parse
    raises its DomainError; one refused after parsing raises RefusedWrite.
    """
    config = parse_model_yaml(body)
    try:
        plan = registry.plan_append(config)
        check_content_conflicts(plan)
        if not plan.created_profiles:
            return plan, None
        yaml_text = plan.merged_yaml
        ensure_reads_back(plan.merged_config, yaml_text)
    except DomainError as exc:
        raise RefusedWrite(exc, named_model(config)) from exc
    return plan, yaml_text


class WriterActor(Actor):
    def __init__(self, cell: StateCell, memory: WriterMemory, *, store: ConfigStore | None,
                 router_id: str, publisher: ActorRef | None = None,
                 nats_connected: Callable[[], bool] | None = None,
                 idempotency_ttl: float = 86400.0, metrics=None, publish_timeout: float = 5.0,
                 max_payload: Callable[[], int | None] | None = None,
                 mailbox=None) -> None:
        # `memory` lives outside the actor so that a restarted incarnation keeps the completion
        # count and the remembered keys.
        super().__init__(mailbox=mailbox, name="writer")
        self.cell = cell
        self.store = store
        self.router_id = router_id
        self.publisher = publisher  # ActorRef of the PublisherActor, or None (standalone)
        self.nats_connected = nats_connected
        self.memory = memory
        self.idempotency_ttl = idempotency_ttl
        self.metrics = metrics
        self.publish_timeout = publish_timeout
        self.max_payload = max_payload  # the NATS server's max_payload, once connected
        # One parse at a time (the mailbox already serialises writes); a worker thread of its
        # own so the trio thread keeps serving while a large body is parsed.
        self.parse_limiter = trio.CapacityLimiter(1)

    @property
    def response_router_id(self) -> str:
        return self.router_id if self.publisher is not None else "standalone"

    async def handle(self, message: WriteModel) -> WriteOutcome:
        try:
            outcome = await self._write(message)
        except DomainError as exc:
            outcome = error_outcome(exc.status, exc.detail())
        finally:
            self.memory.completed += 1
        key = message.idempotency_key
        if key and not message.dry_run and not outcome.ok:
            self.memory.remember_failure(key, Failure(self.memory.completed, outcome.status,
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
            failure = self.memory.failure_seen_by(key, msg.ticket)
            if failure is not None:
                return WriteOutcome(failure.status, failure.body)

        state = self.cell.current
        try:
            plan, yaml_text = await trio.to_thread.run_sync(
                prepare_write, state.registry, msg.body, limiter=self.parse_limiter)
        except RefusedWrite as refused:
            return error_outcome(refused.error.status, refused.error.detail(),
                                 model_id=refused.model_id)

        if yaml_text is None:
            outcome = self._success(200, plan, warnings=(), dry_run=msg.dry_run)
        elif (too_large := self._delta_too_large(state, plan, yaml_text)) is not None:
            outcome = too_large
        elif msg.dry_run:
            outcome = self._success(201, plan, warnings=(), dry_run=True)
        else:
            outcome = await self._commit(state, plan, yaml_text)
        if key and outcome.ok:
            await self._remember(key, Remembered(outcome.status, outcome.body, digest))
        return outcome

    def _delta_too_large(self, state: ConfigState, plan: AppendPlan,
                         yaml_text: str) -> WriteOutcome | None:
        """413 when a delta of this write would exceed the NATS server's max payload.

        The server refuses such a message on every subject, so the write would be durable but
        never delivered; checked before anything is persisted, from the deltas' real size.
        """
        limit = self.max_payload() if self.max_payload is not None else None
        if self.publisher is None or not limit:
            return None
        epoch = max(state.epoch, self.memory.epoch_floor) + 1
        size = max(len(d.to_json_bytes()) for d in
                   self._deltas(plan, yaml_text, epoch, state.generation,
                                lambda bundle: HASH_PLACEHOLDER))
        if size <= limit:
            return None
        return error_outcome(413, {
            "error": "payload_too_large",
            "message": f"The model document makes a {size}-byte NATS delta; the NATS server "
                       f"accepts at most {limit} bytes. Nothing was written."})

    def _deltas(self, plan: AppendPlan, yaml_text: str, epoch: int, generation: str,
                bundle_hash: Callable[[str], str]) -> tuple[ConfigDelta, ...]:
        return write_deltas(self.router_id, plan.model_id, plan.created_profiles, yaml_text,
                            plan.affected_bundles, epoch, generation, bundle_hash)

    async def _commit(self, state: ConfigState, plan: AppendPlan, yaml_text: str) -> WriteOutcome:
        # After a failed commit the store may hold the epoch it tried to write: the floor is what
        # the store held afterwards (see _after_failed_commit), so a persisted epoch is never
        # reused for a different write.
        epoch = max(state.epoch, self.memory.epoch_floor) + 1
        if self.store is not None:
            try:
                await trio.to_thread.run_sync(self.store.commit_write, plan.model_id, yaml_text,
                                              epoch)
                self._count_store("success")
            except StoreUnavailable as exc:
                self._count_store("failure")
                log.error("store write for %s failed: %s", plan.model_id, exc)
                await self._after_failed_commit(state, epoch)
                return error_outcome(503, STORE_UNAVAILABLE, model_id=plan.model_id)
        registry = state.registry.apply(plan)
        new_state = state.with_write(registry, plan.model_id, yaml_text, epoch)
        deltas = self._deltas(plan, yaml_text, new_state.epoch, new_state.generation,
                              registry.bundle_config_hash)
        self.cell.install(new_state, deltas)
        if self.metrics is not None:
            self.metrics.on_state(new_state, self.cell.log.statistics())
        warnings = await self._publish(new_state.epoch, deltas)
        return self._success(201, plan, warnings=warnings, dry_run=False)

    async def _after_failed_commit(self, state: ConfigState, epoch: int) -> None:
        """Keep the API's epoch and the store's in step after a failed commit.

        ``commit_write`` persists the epoch before the model, so a failure may leave the store
        one epoch ahead. The store is read back: if it holds the new epoch, the API adopts it
        (same models; gateways see an epoch change, never a gap in the deltas), and if it does
        not, the number was never persisted nor published and the next write may use it. Only
        when the store cannot even be read is the epoch burned (the floor), never reused.
        """
        try:
            stored = await trio.to_thread.run_sync(self.store.read_epoch)
        except StoreUnavailable as exc:
            log.error("after a failed write the store's epoch is unreadable: %s", exc)
            self.memory.epoch_floor = max(self.memory.epoch_floor, epoch)
            return
        self.memory.epoch_floor = max(self.memory.epoch_floor, stored)
        if stored > state.epoch and self.cell.current is state:
            log.warning("the failed write left the store at epoch %d; serving epoch %d", stored,
                        stored)
            self.cell.install(state.with_epoch(stored))  # logged without deltas: no holes
            if self.metrics is not None:
                self.metrics.on_state(self.cell.current, self.cell.log.statistics())

    async def _publish(self, epoch: int, deltas: tuple[ConfigDelta, ...]) -> tuple[str, ...]:
        if self.publisher is None:
            return ()
        try:
            result: PublishResult = await self.publisher.ask(PublishDeltas(deltas),
                                                              timeout=self.publish_timeout)
        except Exception as exc:  # a publisher crash or timeout must not turn a durable write into an error
            log.error("publishing epoch %d failed: %r", epoch, exc)
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
        hit = self.memory.success(key)
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
        self.memory.remember_success(key, entry)
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

"""The workload: concurrent careful clients adding models and appending profiles to sie-config.

Each operation writes one (model, profile) pair nobody else writes, so the checker can tell
every write apart. A client behaves as the contract asks a careful client to: every operation
carries its own `Idempotency-Key`, and a 503, a timeout or a lost connection is retried with the
same key and the same bytes, with backoff, until an answer settles it or the operation's
deadline passes. The outcome of an operation is

    ok             some attempt got 200/201: the write is acknowledged and must never be lost;
    failed         every attempt got an answer that says "nothing was applied" (a 4xx, a 503
                   `nats_unavailable` / `store_unavailable`, a refused connection);
    indeterminate  otherwise: at least one attempt may have reached the writer (a timeout, a
                   reset connection, a 5xx of unknown effect) and no later attempt succeeded.

Everything is bounded: the request timeout, the attempts and deadline of one operation, and the
total number of operations. `stop` ends the workload: no new operation starts, and the ones in
flight finish their retries (up to their deadline) so their outcome is settled where possible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping

import httpx
import orjson
import trio
import yaml

from sie_actors.runtime import Backoff

from sie_chaos.history import History

OK, FAILED, INDETERMINATE = "ok", "failed", "indeterminate"

# Answers of sie-config that promise the write was not applied (CONTRACT §2 items 8, 9, §4).
NOTHING_APPLIED_503 = frozenset({"nats_unavailable", "store_unavailable"})


@dataclass(frozen=True)
class WorkloadSettings:
    clients: int = 4
    request_timeout: float = 5.0
    op_deadline: float = 30.0
    # Every `impatient_every`-th client gives up after `impatient_deadline` seconds instead, so
    # the history also holds failed and indeterminate writes for the checker to judge.
    impatient_every: int = 2
    impatient_deadline: float = 1.5
    max_attempts: int = 100
    max_ops: int = 20_000
    think: tuple[float, float] = (0.02, 0.15)
    append_ratio: float = 0.4
    backoff_initial: float = 0.1
    backoff_max: float = 1.0


@dataclass(frozen=True)
class Op:
    op: int
    client: int
    f: str            # "add" (a new model) or "append" (a new profile to an earlier model)
    model: str
    profile: str
    bundle: str
    key: str
    body: bytes

    def describe(self) -> dict:
        return {"op": self.op, "client": self.client, "f": self.f, "model": self.model,
                "profile": self.profile, "bundle": self.bundle, "key": self.key}


@dataclass(frozen=True)
class AttemptResult:
    kind: str    # "ok" | "definite" (nothing applied) | "unknown" (may have been applied)
    retry: bool
    label: str   # HTTP status or transport error, for the history
    error: str = ""


def classify_response(status: int, body: bytes) -> AttemptResult:
    """What one HTTP answer of `POST /v1/configs/models` means for the write."""
    if status in (200, 201):
        return AttemptResult("ok", False, str(status))
    code = _error_code(body)
    if status == 503:
        if code in NOTHING_APPLIED_503:
            return AttemptResult("definite", True, "503", code)
        return AttemptResult("unknown", True, "503", code or "unknown")  # e.g. write_timeout
    if status == 429:
        return AttemptResult("definite", True, "429", code)
    if 400 <= status < 500:
        return AttemptResult("definite", False, str(status), code)
    return AttemptResult("unknown", True, str(status), code)


def classify_exception(exc: Exception) -> AttemptResult:
    """A request without an answer: refused before sending is definite, anything later is not."""
    name = type(exc).__name__
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return AttemptResult("definite", True, name)
    return AttemptResult("unknown", True, name)


def _error_code(body: bytes) -> str:
    try:
        detail = orjson.loads(body).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if isinstance(detail, dict):
        return str(detail.get("error") or "")
    return ""


def ack_problem(op: Op, body: bytes) -> str:
    """Why a 200/201 body does not acknowledge this operation's write ("" when it does)."""
    try:
        answer = orjson.loads(body)
        model = str(answer["model_id"])
        profiles = list(answer.get("created_profiles") or []) + list(
            answer.get("existing_profiles_skipped") or [])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return f"unreadable success body {body[:80]!r}"
    if model.lower() != op.model.lower():
        return f"acknowledged model {model!r}, not {op.model!r}"
    if op.profile not in profiles:
        return f"profile {op.profile!r} neither created nor skipped ({profiles})"
    return ""


def settle(results: list[AttemptResult]) -> str:
    """The outcome of an operation from its attempts, in order."""
    if any(r.kind == "ok" for r in results):
        return OK
    if results and all(r.kind == "definite" for r in results):
        return FAILED
    return INDETERMINATE


def bundle_adapters(bundles) -> dict[str, str]:
    """One adapter path per bundle (its first adapter module), so writes reach every bundle."""
    return {b.name: f"{b.adapters[0]}:ChaosAdapter" for b in bundles if b.adapters}


class OpGenerator:
    """The operations of one client, from its own seeded random stream."""

    def __init__(self, seed: int, client: int, adapters: Mapping[str, str],
                 append_ratio: float) -> None:
        self.rng = random.Random(f"sie-chaos:{seed}:{client}")
        self.seed = seed
        self.client = client
        self.adapters = dict(sorted(adapters.items()))
        self.append_ratio = append_ratio
        self.models: list[str] = []
        self.profiles: dict[str, int] = {}

    def next(self, op_id: int) -> Op:
        bundle = self.rng.choice(list(self.adapters))
        if self.models and self.rng.random() < self.append_ratio:
            f, model = "append", self.rng.choice(self.models)
        else:
            f, model = "add", f"chaos/c{self.client}-m{len(self.models)}"
            self.models.append(model)
        number = self.profiles.get(model, 0)
        self.profiles[model] = number + 1
        profile = f"p{number}"
        body = yaml.safe_dump({"sie_id": model, "profiles": {profile: {
            "adapter_path": self.adapters[bundle], "max_batch_tokens": 64 + op_id}}},
            sort_keys=False).encode()
        return Op(op_id, self.client, f, model, profile, bundle,
                  f"chaos-{self.seed}-{op_id}", body)

    def think(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)


@dataclass
class Workload:
    config_url: str
    history: History
    settings: WorkloadSettings
    adapters: Mapping[str, str]
    seed: int = 0
    token: str | None = None
    stop: trio.Event = field(default_factory=trio.Event)
    inflight: int = 0  # POSTs sent and not yet answered: the nemesis kills sie-config mid-write
    issued: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {OK: 0, FAILED: 0,
                                                              INDETERMINATE: 0})

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for index in range(self.settings.clients):
                nursery.start_soon(self._client, index)

    def _take_op_id(self) -> int | None:
        if self.stop.is_set() or self.issued >= self.settings.max_ops:
            return None
        self.issued += 1
        return self.issued

    async def _client(self, index: int) -> None:
        generator = OpGenerator(self.seed, index, self.adapters, self.settings.append_ratio)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with httpx.AsyncClient(base_url=self.config_url, headers=headers,
                                     timeout=self.settings.request_timeout) as http:
            deadline = self.settings.op_deadline
            if self.settings.impatient_every and index % self.settings.impatient_every == 1:
                deadline = self.settings.impatient_deadline
            while (op_id := self._take_op_id()) is not None:
                await self.perform(http, generator.next(op_id), deadline)
                with trio.move_on_after(generator.think(self.settings.think)):
                    await self.stop.wait()

    async def perform(self, http: httpx.AsyncClient, op: Op,
                      op_deadline: float | None = None) -> str:
        history, settings = self.history, self.settings
        history.record("invoke", **op.describe())
        deadline = trio.current_time() + (op_deadline or settings.op_deadline)
        backoff = Backoff(initial=settings.backoff_initial, maximum=settings.backoff_max)
        results: list[AttemptResult] = []
        status: int | None = None
        bad_ack = ""
        try:
            while True:
                self.inflight += 1
                try:
                    response = await http.post("/v1/configs/models", content=op.body, headers={
                        "Idempotency-Key": op.key, "Content-Type": "application/x-yaml"})
                except httpx.TransportError as exc:
                    result = classify_exception(exc)
                except trio.Cancelled:  # the run was cut short while this request was out
                    results.append(AttemptResult("unknown", False, "cancelled"))
                    raise
                else:
                    status = response.status_code
                    result = classify_response(status, response.content)
                    if result.kind == "ok" and (problem := ack_problem(op, response.content)):
                        bad_ack = problem
                finally:
                    self.inflight -= 1
                results.append(result)
                history.record("attempt", op=op.op, n=len(results), result=result.label,
                               error=result.error, kind=result.kind)
                if not result.retry or len(results) >= settings.max_attempts:
                    break
                delay = backoff.next_delay()
                if trio.current_time() + delay >= deadline:
                    break
                await trio.sleep(delay)
        finally:
            outcome = settle(results)
            self.outcomes[outcome] += 1
            extra = {"bad_ack": bad_ack} if bad_ack else {}
            history.record("complete", op=op.op, outcome=outcome, status=status,
                           attempts=len(results),
                           last=(results[-1].error or results[-1].label) if results else "",
                           **extra)
        return outcome


"""sie-config's HTTP surface. Handlers read the published state or ask the WriterActor; they never
mutate anything themselves."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from sie_actors.domain.errors import (BundleNotFound, DeltasGone, DomainError, InvalidRequest,
                                     ModelNotFound)
from sie_actors.domain.ids import validate_model_id
from sie_actors.domain.resolve import resolve
from sie_actors.domain.snapshot import bundle_yaml_view
from sie_actors.http.app import (YAML, ServiceUnavailable, guard_read, guard_write,
                                 json_response, raw_response)
from sie_actors.http.auth import AuthError, Tokens, token_id, token_role
from sie_actors.http.fastpath import FastReads
from sie_actors.runtime import ActorRef, AskTimeout

from sie_config.audit import audit_write
from sie_config.metrics import ConfigMetrics
from sie_config.writer import StateCell, WriteModel, WriteOutcome

AUTH_ERROR_CODES = {401: "unauthorized", 403: "forbidden"}


def refusal_code(exc: Exception) -> tuple[int, str]:
    """Status and error code of a write refused before the writer saw it."""
    if isinstance(exc, AuthError):
        return exc.status, AUTH_ERROR_CODES.get(exc.status, "forbidden")
    if isinstance(exc, ServiceUnavailable):
        return exc.status, exc.code
    assert isinstance(exc, HTTPException)
    code = exc.code or 400
    return code, "payload_too_large" if code == 413 else "bad_request"


TRUE_SPELLINGS = ("true", "1", "yes")
FALSE_SPELLINGS = ("false", "0", "no")


def query_flag(name: str) -> bool:
    """A boolean query parameter: absent is false, the documented spellings (any case) say
    which, and anything else (``maybe``, ``on``, an empty or bare ``?dry_run``) is a 400.

    Guessing is not safe here: a misspelt ``dry_run`` read as false writes for real, and
    append-only cannot undo it.
    """
    values = request.args.getlist(name)
    if not values:
        return False
    if len(values) > 1:
        raise InvalidRequest(f"Query parameter '{name}' is given {len(values)} times; give it once.")
    value = values[0].strip().lower()
    if value in TRUE_SPELLINGS:
        return True
    if value in FALSE_SPELLINGS:
        return False
    raise InvalidRequest(
        f"Query parameter '{name}' must be one of {', '.join(TRUE_SPELLINGS + FALSE_SPELLINGS)} "
        f"(any case), got {values[0]!r}; nothing was written.")


def query_value(name: str, *, required: bool) -> str | None:
    """A query parameter given at most once and not blank; None when absent and optional."""
    values = request.args.getlist(name)
    if not values:
        if required:
            raise InvalidRequest(f"Query parameter '{name}' is required.")
        return None
    if len(values) > 1:
        raise InvalidRequest(f"Query parameter '{name}' is given {len(values)} times; give it once.")
    if not values[0].strip():
        raise InvalidRequest(f"Query parameter '{name}' must not be empty.")
    return values[0]


MAX_EPOCH = 2**63 - 1


def query_epoch(name: str) -> int:
    """A required epoch: a whole number, 0 or more (digits only: no sign, no spaces)."""
    raw = query_value(name, required=True)
    assert raw is not None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_EPOCH:
        raise InvalidRequest(f"Query parameter '{name}' must be an epoch (a whole number from 0 "
                             f"to {MAX_EPOCH}), got {raw[:40]!r}.")
    return int(raw)


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def mount(app: QuartTrio, cell: StateCell, tokens: Tokens, writer: ActorRef,
          ticket: Callable[[], int], *, write_timeout: float = 60.0,
          metrics: ConfigMetrics | None = None) -> None:
    """`ticket()` is the writer's completion count, stamped on each write request so the writer
    can tell whether a failed request with the same Idempotency-Key was in flight meanwhile.

    With `metrics`, the hot reads whose bodies are cached per state (the model list, the epoch
    that every gateway and worker polls, the bundle list) are also answered by a `FastReads`
    layer in front of Quart, as on the gateway: same bodies, headers and metrics; anything but
    their 200 falls through to the routes below."""
    if metrics is not None:
        fast = FastReads(app.asgi_app, metrics, tokens)
        for path, body in (("/v1/configs/models", lambda _rest: cell.current.models_body),
                           ("/v1/configs/epoch", lambda _rest: cell.current.epoch_body),
                           ("/v1/configs/bundles", lambda _rest: cell.current.bundles_body)):
            fast.exact(path, path, body)
        app.asgi_app = fast

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        # Ready as soon as the registry is loaded: reads work even while NATS is down
        # (CONTRACT §2 item 8); writes say 503 themselves.
        return json_response({"status": "ready"})

    @app.get("/v1/configs/models")
    async def list_models() -> Response:
        guard_read(tokens)
        return raw_response(cell.current.models_body)

    @app.get("/v1/configs/models/<path:model_id>")
    async def get_model(model_id: str) -> Response:
        guard_read(tokens)
        validate_model_id(model_id)
        state = cell.current
        entry = state.registry.get_model(model_id)
        if entry is None:
            raise ModelNotFound(model_id)
        return raw_response(state.model_yaml(entry).encode("utf-8"), content_type=YAML)

    @app.post("/v1/configs/models")
    async def add_model() -> Response:
        started = time.perf_counter()
        header = request.headers.get("Authorization")
        dry_run = query_flag("dry_run")
        who = dict(token_role=token_role(tokens, header), token_id=token_id(header),
                   dry_run=dry_run)
        body = None
        try:
            guard_write(tokens)
            body = await request.get_data(cache=False, as_text=False)
            message = WriteModel(
                body=body,
                idempotency_key=request.headers.get("Idempotency-Key") or None,
                dry_run=dry_run,
                ticket=ticket(),
            )
            try:
                outcome: WriteOutcome = await writer.ask(message, timeout=write_timeout)
            except AskTimeout as exc:
                raise ServiceUnavailable(
                    "write_timeout", "The write did not complete in time; its outcome is "
                    "unknown. Retry with the same Idempotency-Key.") from exc
        except (AuthError, ServiceUnavailable, HTTPException) as exc:
            status, code = refusal_code(exc)
            audit_write(status=status, error=code, latency_ms=elapsed_ms(started),
                        body_bytes=None if body is None else len(body), **who)
            raise
        if not outcome.ok or (not dry_run and outcome.model_id is not None):
            audit_write(status=outcome.status, error=outcome.error_code,
                        model_id=outcome.model_id, latency_ms=elapsed_ms(started),
                        body_bytes=len(body), **who)
        return raw_response(outcome.body, status=outcome.status)

    @app.post("/v1/configs/resolve")
    async def resolve_route() -> Response:
        guard_read(tokens)
        body = await request.get_data(cache=False, as_text=False)
        return json_response(resolve(cell.current.registry, body))

    @app.get("/v1/configs/bundles")
    async def list_bundles() -> Response:
        guard_read(tokens)
        return raw_response(cell.current.bundles_body)

    @app.get("/v1/configs/bundles/<bundle_id>")
    async def get_bundle(bundle_id: str) -> Response:
        guard_read(tokens)
        bundle = cell.current.registry.get_bundle(bundle_id)
        if bundle is None:
            raise BundleNotFound(bundle_id)
        return raw_response(bundle_yaml_view(bundle).encode("utf-8"), content_type=YAML)

    @app.get("/v1/configs/bundles/<bundle_id>/export")
    async def export_bundle(bundle_id: str) -> Response:
        # Read token on purpose: workers bootstrap their own bundle with it (CONTRACT §2 item 4).
        guard_read(tokens)
        state = cell.current
        if state.registry.get_bundle(bundle_id) is None:
            raise BundleNotFound(bundle_id)
        return raw_response(state.export_body(now_iso(), bundle_id))

    @app.get("/v1/configs/epoch")
    async def epoch() -> Response:
        guard_read(tokens)
        return raw_response(cell.current.epoch_body)

    @app.get("/v1/configs/deltas")
    async def deltas() -> Response:
        # Read token: what a mirror reads here is what NATS already told it (or should have).
        guard_read(tokens)
        try:
            since = query_epoch("since")
            generation = query_value("generation", required=True)
            bundle = query_value("bundle", required=False)
            state, log = cell.current, cell.log  # one synchronous read: the two agree
            if bundle is not None and state.registry.get_bundle(bundle) is None:
                raise BundleNotFound(bundle)
            found = log.since(since, generation or "", bundle)
        except DeltasGone:
            count_read("gone")
            raise
        except DomainError:
            count_read("bad_request")
            raise
        count_read("ok")
        return raw_response(state.deltas_body(since, found))

    def count_read(result: str) -> None:
        if metrics is not None:
            metrics.delta_reads.labels(result).inc()

    @app.get("/v1/configs/export")
    async def export() -> Response:
        guard_write(tokens)
        state = cell.current
        body = await trio.to_thread.run_sync(state.export_body, now_iso())
        return raw_response(body)

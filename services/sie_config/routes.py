"""sie-config's HTTP surface. Handlers read the published state or ask the WriterActor; they never
mutate anything themselves."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import trio
from quart import Response, request
from quart_trio import QuartTrio

from sie_actors.domain.errors import BundleNotFound, InvalidRequest, ModelNotFound
from sie_actors.domain.ids import validate_model_id
from sie_actors.domain.resolve import resolve
from sie_actors.domain.snapshot import bundle_yaml_view
from sie_actors.http.app import (YAML, ServiceUnavailable, guard_read, guard_write,
                                 json_response, raw_response)
from sie_actors.http.auth import Tokens, token_id
from sie_actors.runtime import ActorRef, AskTimeout

from sie_config.writer import StateCell, WriteModel, WriteOutcome


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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def mount(app: QuartTrio, cell: StateCell, tokens: Tokens, writer: ActorRef,
          ticket: Callable[[], int], *, write_timeout: float = 60.0) -> None:
    """`ticket()` is the writer's completion count, stamped on each write request so the writer
    can tell whether a failed request with the same Idempotency-Key was in flight meanwhile."""
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
        guard_write(tokens)
        body = await request.get_data(cache=False, as_text=False)
        message = WriteModel(
            body=body,
            idempotency_key=request.headers.get("Idempotency-Key") or None,
            dry_run=query_flag("dry_run"),
            token_id=token_id(request.headers.get("Authorization")),
            ticket=ticket(),
        )
        try:
            outcome: WriteOutcome = await writer.ask(message, timeout=write_timeout)
        except AskTimeout as exc:
            raise ServiceUnavailable(
                "write_timeout", "The write did not complete in time; its outcome is unknown. "
                "Retry with the same Idempotency-Key.") from exc
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

    @app.get("/v1/configs/export")
    async def export() -> Response:
        guard_write(tokens)
        state = cell.current
        body = await trio.to_thread.run_sync(state.export_body, now_iso())
        return raw_response(body)

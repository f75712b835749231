"""sie-gateway's HTTP surface: reads from this replica's mirror and worker views only.

There is no write route: `POST /v1/configs/models` gets 405 because only GET is registered on
that path (writes go to sie-config).
"""

from __future__ import annotations

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio

from sie_actors.domain.errors import BundleNotFound, ModelNotFound
from sie_actors.domain.resolve import resolve
from sie_actors.domain.snapshot import SOURCE_GATEWAY, bundle_summary, bundle_yaml_view, gateway_model_yaml
from sie_actors.http.app import (YAML, app_metrics, error_response, guard_read, json_response,
                                 raw_response)
from sie_actors.http.auth import Tokens
from sie_actors.http.fastpath import FastReads
from sie_actors.http.metrics import ServiceMetrics

from sie_gateway.mirror import MirrorCell
from sie_gateway.readiness import healthy_views, model_status
from sie_gateway.workers import WorkerDirectory

STATUS_SUFFIX = "/status"
MODEL_RULE = "/v1/configs/models/<path:model_path>"
# One route answers a model and its status; metrics tell them apart under this label.
STATUS_RULE = "/v1/configs/models/<path:model_id>/status"


def model_route_label(path: str) -> str:
    return STATUS_RULE if path.endswith(STATUS_SUFFIX) else MODEL_RULE


def status_model_id(model_path: str) -> str | None:
    """The model id of a `{id}/status` path, else ``None``."""
    if model_path.endswith(STATUS_SUFFIX) and len(model_path) > len(STATUS_SUFFIX):
        return model_path[: -len(STATUS_SUFFIX)]
    return None


def mount(app: QuartTrio, cell: MirrorCell, directory: WorkerDirectory, tokens: Tokens, *,
          heartbeat_timeout: float, ready: callable,
          metrics: ServiceMetrics | None = None) -> FastReads | None:
    """Register the routes; with `metrics`, the two hot reads (the model list and a model's
    `/status`) are also answered by a `FastReads` layer in front of Quart (same bodies, same
    headers, same metrics; anything but their 200 falls through to the routes below). Returns
    that layer, for other routes' fast doors (encode), or None without `metrics`."""
    def healthy():
        return healthy_views(directory.views(), trio.current_time(), heartbeat_timeout)

    def status_body(model_path: str) -> bytes | None:
        """`{id}/status` of a known model; None otherwise (the path may name a model itself)."""
        if not model_path.endswith(STATUS_SUFFIX):
            return None
        state = cell.current
        entry = state.registry.get_model(model_path[: -len(STATUS_SUFFIX)])
        if entry is None:
            return None
        return orjson.dumps(model_status(entry, state.registry, state.position.epoch, healthy()))

    app_metrics(app).refine_route(MODEL_RULE, model_route_label)
    fast = None
    if metrics is not None:
        fast = FastReads(app.asgi_app, metrics, tokens)
        fast.exact("/v1/configs/models", "/v1/configs/models",
                   lambda _rest: cell.current.models_body)
        fast.prefix("/v1/configs/models/", MODEL_RULE, status_body)
        app.asgi_app = fast

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        if not ready():
            return error_response(503, {"error": "not_ready",
                                        "message": "No snapshot from sie-config applied yet."})
        return json_response({"status": "ready", "healthy_workers": len(healthy())})

    @app.get("/v1/configs/models")
    async def list_models() -> Response:
        guard_read(tokens)
        return raw_response(cell.current.models_body)

    @app.get(MODEL_RULE)
    async def get_model(model_path: str) -> Response:
        guard_read(tokens)
        body = status_body(model_path)
        if body is not None:
            return raw_response(body)
        state = cell.current
        entry = state.registry.get_model(model_path)
        if entry is None:
            # `{id}/status` of an unknown model names that model, not `{id}/status`.
            raise ModelNotFound(status_model_id(model_path) or model_path)
        return raw_response(gateway_model_yaml(entry).encode("utf-8"), content_type=YAML)

    @app.get("/v1/configs/sync")
    async def sync_position() -> Response:
        """Where this replica's mirror stands, in the shape of sie-config's `/v1/configs/epoch`
        (plus `bootstrapped`), so a probe can compare the two field by field."""
        guard_read(tokens)
        state = cell.current
        return json_response({"epoch": state.position.epoch,
                              "generation": state.position.generation,
                              "bundles_hash": state.registry.bundles_hash,
                              "bundle_config_hashes": state.registry.bundle_config_hashes(),
                              "bootstrapped": state.bootstrapped})

    @app.get("/v1/configs/bundles")
    async def list_bundles() -> Response:
        guard_read(tokens)
        views = healthy()
        bundles = []
        for bundle in cell.current.registry.list_bundles():
            item = bundle_summary(bundle, SOURCE_GATEWAY)
            item["connected_workers"] = sum(1 for v in views if v.status.bundle == bundle.name)
            bundles.append(item)
        return json_response({"bundles": bundles})

    @app.get("/v1/configs/bundles/<bundle_id>")
    async def get_bundle(bundle_id: str) -> Response:
        guard_read(tokens)
        bundle = cell.current.registry.get_bundle(bundle_id)
        if bundle is None:
            raise BundleNotFound(bundle_id)
        return raw_response(bundle_yaml_view(bundle, SOURCE_GATEWAY).encode("utf-8"),
                            content_type=YAML)

    @app.post("/v1/configs/resolve")
    async def resolve_route() -> Response:
        guard_read(tokens)
        body = await request.get_data(cache=False, as_text=False)
        return json_response(resolve(cell.current.registry, body))

    return fast

"""`POST /v1/encode/{[bundle:/]org/model}`: from an HTTP body to work items on JetStream and back.

Order of checks, as the reference gateway's (§7): the body and the model spec (4xx), the model
in this replica's mirror (404 unknown, 409 bundle conflict), the queue (503 at once when NATS or
JetStream is down, never after the timeout), a healthy worker of the bundle (202 provisioning
with `Retry-After`), then publish and wait for every item's result on the inbox. The timeout is
503 `MODEL_LOADING`, as in the original; every item failed is the reference's status for the
shared code.
"""

from __future__ import annotations

import importlib.metadata
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from sie_actors.domain.errors import BundleConflict, ModelNotFound
from sie_actors.domain.resolve import parse_model_spec
from sie_actors.http.app import error_response, guard_read
from sie_actors.http.auth import Tokens
from sie_actors.inference import encode_api, wire
from sie_actors.inference.errors import InferenceError, ModelLoading, PayloadTooLarge
from sie_actors.nats.jetstream import QueueUnavailable, WorkQueue

from sie_gateway.inbox import Inbox
from sie_gateway.metrics import GatewayMetrics
from sie_gateway.mirror import MirrorCell
from sie_gateway.workers import WorkerView

ENCODE_RULE = "/v1/encode/<path:spec>"
ENCODE_PREFIX = "/v1/encode/"
VERSION = importlib.metadata.version("sie-actors")
PROVISIONING_RETRY_S = 120
PROVISIONING_WAIT_S = 180


@dataclass(frozen=True)
class Route:
    model_id: str
    bundle: str
    pool: str


class Provisioning(Exception):
    def __init__(self, bundle: str) -> None:
        super().__init__(bundle)
        self.bundle = bundle


def pick_route(cell: MirrorCell, spec: str, healthy: list[WorkerView],
               pinned_pool: str | None) -> Route:
    """Model, bundle and pool for a spec; raises the 404/409 domain errors or `Provisioning`."""
    prefix, model = parse_model_spec(spec)
    entry = cell.current.registry.get_model(model)
    if entry is None or not entry.bundles:
        raise ModelNotFound(model, key="model", message=f"Unknown model '{model}'")
    if prefix and prefix not in entry.bundles:
        raise BundleConflict(model, prefix, entry.bundles)
    bundle = prefix or entry.bundles[0]
    if pinned_pool:
        return Route(entry.model_id, bundle, pinned_pool)
    for view in healthy:
        if view.status.bundle == bundle:
            return Route(entry.model_id, bundle, view.status.pool_name or bundle)
    raise Provisioning(bundle)


def work_items(route: Route, req: encode_api.EncodeRequest, request_id: str, inbox: Inbox,
               bundle_config_hash: str) -> list[tuple[str, bytes]]:
    subject = wire.work_subject(route.model_id, route.pool)
    now = time.time()
    out = []
    for index, item in enumerate(req.items):
        work = wire.WorkItem(
            work_item_id=f"{request_id}.{index}", request_id=request_id, item_index=index,
            total_items=len(req.items), operation="encode", model_id=route.model_id,
            profile_id="default", pool_name=route.pool, router_id=inbox.router_id,
            reply_subject=inbox.reply_subject(request_id), timestamp=now,
            bundle_config_hash=bundle_config_hash, item=item, output_types=req.output_types,
            instruction=req.instruction, is_query=req.is_query, options=req.options or None)
        out.append((subject, work.pack()))
    return out


def _payload(result: wire.WorkResult) -> dict[str, Any]:
    """One item of the answer: its result, or its error (a worker's unreadable result too)."""
    if not result.success:
        return {"error": result.error, "error_code": result.error_code}
    try:
        payload = wire.read_payload(result.result_msgpack)
    except wire.WireError as exc:
        payload = exc
    if isinstance(payload, dict):
        return payload
    return {"error": f"worker {result.worker_id!r} sent an unreadable result: {payload}",
            "error_code": "inference_error"}


def _inference_error(exc: InferenceError, headers: dict[str, str] | None = None) -> Response:
    response = error_response(exc.status, exc.detail())
    response.headers["X-SIE-Error-Code"] = exc.code
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def mount_encode(app: QuartTrio, cell: MirrorCell, tokens: Tokens, metrics: GatewayMetrics,
                 queue: Callable[[], WorkQueue | None], inbox: Inbox,
                 healthy: Callable[[], list[WorkerView]], *, timeout: float) -> None:
    @app.post(ENCODE_RULE)
    async def encode(spec: str) -> Response:
        guard_read(tokens)
        started = time.perf_counter()
        try:
            body = await request.get_data(cache=False, as_text=False)
        except RequestEntityTooLarge:
            response = _inference_error(PayloadTooLarge(
                f"request body exceeds {encode_api.MAX_BODY_BYTES} bytes"))
            response.headers["Connection"] = "close"   # the rest of the body is never read
            return response
        content_type = request.headers.get("Content-Type")
        try:
            req = encode_api.parse_encode_request(body, content_type)
        except InferenceError as exc:
            return _inference_error(exc)
        work_queue = queue()
        if work_queue is None or not work_queue.link.connected:
            return error_response(503, {"error": "queue_unavailable", "message":
                                        "NATS JetStream is unavailable; the gateway is queue-only"})
        try:
            route = pick_route(cell, spec, healthy(), request.headers.get("X-SIE-Pool"))
        except Provisioning as exc:
            response = Response(
                orjson.dumps({"status": "provisioning", "bundle": exc.bundle,
                              "estimated_wait_s": PROVISIONING_WAIT_S,
                              "message": "no healthy worker serves this bundle yet"}),
                status=202, content_type="application/json")
            response.headers["Retry-After"] = str(PROVISIONING_RETRY_S)
            return response
        request_id = uuid.uuid4().hex
        registry = cell.current.registry
        messages = work_items(route, req, request_id, inbox,
                              registry.bundle_config_hash(route.bundle))
        pending = inbox.open(request_id, len(messages))
        try:
            try:
                await work_queue.publish(route.pool, messages)
            except QueueUnavailable as exc:
                return error_response(503, {"error": "queue_unavailable",
                                            "message": f"Queue publish failed: {exc}"})
            with trio.move_on_after(timeout):
                await pending.done.wait()
        finally:
            inbox.close(request_id)
        headers = {"x-sie-version": VERSION, "x-sie-server-version": VERSION,
                   "x-sie-request-id": request_id, "x-sie-worker": f"queue:{request_id}"}
        if not pending.done.is_set():
            metrics.encode_timeouts.labels(route.model_id).inc()
            return _inference_error(ModelLoading(
                f"no result for {len(messages) - len(pending.results)} of {len(messages)} "
                f"items within {timeout:g} s; the model may be loading"), headers)
        results = [pending.results[i] for i in range(len(messages))]
        queue_ms = max((r.queue_ms or 0.0) for r in results)
        inference_ms = max((r.inference_ms or 0.0) for r in results)
        headers.update({"x-queue-time-ms": f"{queue_ms:.2f}",
                        "x-inference-time-ms": f"{inference_ms:.2f}"})
        metrics.encode_queue_wait.labels(route.model_id).observe(queue_ms / 1000.0)
        metrics.encode_items.labels(route.model_id).observe(len(messages))
        failures = [r for r in results if not r.success]
        if len(failures) == len(results):
            outcome = encode_api.all_failed_outcome(
                [{"item_index": r.item_index, "error": r.error, "error_code": r.error_code}
                 for r in failures])
            response = error_response(outcome.status, {
                "error": outcome.code, "message": failures[0].error or outcome.code,
                "details": outcome.details})
            response.headers["X-SIE-Error-Code"] = outcome.code
            if outcome.retry_after is not None:
                response.headers["Retry-After"] = str(outcome.retry_after)
            response.headers.update(headers)
            return response
        payloads = [_payload(r) for r in results]
        as_msgpack = encode_api.wants_msgpack(request.headers.get("Accept"), content_type)
        data = encode_api.encode_response(route.model_id, payloads, req.items,
                                          as_msgpack=as_msgpack)
        response = Response(data, status=200, content_type=encode_api.MSGPACK if as_msgpack
                            else encode_api.JSON)
        response.headers.update(headers)
        metrics.encode_latency.labels(route.model_id).observe(time.perf_counter() - started)
        return response

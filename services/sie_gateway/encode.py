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
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from sie_actors.domain.errors import BundleConflict, DomainError, ModelNotFound
from sie_actors.domain.resolve import parse_model_spec
from sie_actors.http.auth import AuthError, Tokens, check_read, single_authorization
from sie_actors.http.fastpath import Answer, FastReads
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


def detail_answer(status: int, detail: Any, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, orjson.dumps({"detail": detail}), encode_api.JSON,
                  tuple((headers or {}).items()))


def _inference_error(exc: InferenceError, headers: dict[str, str] | None = None) -> Answer:
    extra = {"X-SIE-Error-Code": exc.code}
    if exc.retry_after is not None:
        extra["Retry-After"] = str(exc.retry_after)
    return detail_answer(exc.status, exc.detail(), {**extra, **(headers or {})})


def body_too_large(limit: int = encode_api.MAX_BODY_BYTES) -> Answer:
    """413 for a body over the limit; the rest of it is never read, so the connection closes."""
    answer = _inference_error(PayloadTooLarge(f"request body exceeds {limit} bytes"))
    return Answer(answer.status, answer.body, answer.content_type,
                  answer.headers + (("Connection", "close"),))


class EncodeRoute:
    """The encode route's whole behaviour, from (spec, headers, body) to an `Answer`.

    Why framework-free: the route has two doors that must answer alike. A request with a
    `Content-Length` within the limit comes through `FastReads`'s POST door (hypercorn → this,
    without Quart's per-request machinery, which cost about as much as the route's own work);
    a chunked or oversized body comes through the Quart route, whose body limits stay Quart's.
    """

    def __init__(self, cell: MirrorCell, tokens: Tokens, metrics: GatewayMetrics,
                 queue: Callable[[], WorkQueue | None], inbox: Inbox,
                 healthy: Callable[[], list[WorkerView]], *, timeout: float) -> None:
        self.cell = cell
        self.tokens = tokens
        self.metrics = metrics
        self.queue = queue
        self.inbox = inbox
        self.healthy = healthy
        self.timeout = timeout

    async def answer(self, spec: str, headers: Headers, body: bytes) -> Answer:
        started = time.perf_counter()
        try:
            check_read(self.tokens, single_authorization(headers.getlist("Authorization")))
        except AuthError as exc:
            return detail_answer(exc.status, exc.detail)
        except DomainError as exc:               # several Authorization headers
            return detail_answer(exc.status, exc.detail())
        content_type = headers.get("Content-Type")
        try:
            req = encode_api.parse_encode_request(body, content_type)
        except InferenceError as exc:
            return _inference_error(exc)
        work_queue = self.queue()
        if work_queue is None or not work_queue.link.connected:
            return detail_answer(503, {"error": "queue_unavailable", "message":
                                        "NATS JetStream is unavailable; the gateway is queue-only"})
        cell = self.cell
        try:
            route = pick_route(cell, spec, self.healthy(), headers.get("X-SIE-Pool"))
        except DomainError as exc:
            return detail_answer(exc.status, exc.detail())
        except Provisioning as exc:
            return Answer(202, orjson.dumps({
                "status": "provisioning", "bundle": exc.bundle,
                "estimated_wait_s": PROVISIONING_WAIT_S,
                "message": "no healthy worker serves this bundle yet"}),
                headers=(("Retry-After", str(PROVISIONING_RETRY_S)),))
        request_id = uuid.uuid4().hex
        registry = cell.current.registry
        inbox = self.inbox
        messages = work_items(route, req, request_id, inbox,
                              registry.bundle_config_hash(route.bundle))
        pending = inbox.open(request_id, len(messages))
        try:
            try:
                await work_queue.publish(route.pool, messages)
            except QueueUnavailable as exc:
                return detail_answer(503, {"error": "queue_unavailable",
                                            "message": f"Queue publish failed: {exc}"})
            with trio.move_on_after(self.timeout):
                await pending.done.wait()
        finally:
            inbox.close(request_id)
        answer_headers = {"x-sie-version": VERSION, "x-sie-server-version": VERSION,
                          "x-sie-request-id": request_id, "x-sie-worker": f"queue:{request_id}"}
        if not pending.done.is_set():
            self.metrics.encode_timeouts.labels(route.model_id).inc()
            return _inference_error(ModelLoading(
                f"no result for {len(messages) - len(pending.results)} of {len(messages)} "
                f"items within {self.timeout:g} s; the model may be loading"), answer_headers)
        results = [pending.results[i] for i in range(len(messages))]
        queue_ms = max((r.queue_ms or 0.0) for r in results)
        inference_ms = max((r.inference_ms or 0.0) for r in results)
        answer_headers.update({"x-queue-time-ms": f"{queue_ms:.2f}",
                               "x-inference-time-ms": f"{inference_ms:.2f}"})
        self.metrics.encode_queue_wait.labels(route.model_id).observe(queue_ms / 1000.0)
        self.metrics.encode_items.labels(route.model_id).observe(len(messages))
        failures = [r for r in results if not r.success]
        if len(failures) == len(results):
            outcome = encode_api.all_failed_outcome(
                [{"item_index": r.item_index, "error": r.error, "error_code": r.error_code}
                 for r in failures])
            answer_headers["X-SIE-Error-Code"] = outcome.code
            if outcome.retry_after is not None:
                answer_headers["Retry-After"] = str(outcome.retry_after)
            return detail_answer(outcome.status, {
                "error": outcome.code, "message": failures[0].error or outcome.code,
                "details": outcome.details}, answer_headers)
        payloads = [_payload(r) for r in results]
        as_msgpack = encode_api.wants_msgpack(headers.get("Accept"), content_type)
        data = encode_api.encode_response(route.model_id, payloads, req.items,
                                          as_msgpack=as_msgpack)
        self.metrics.encode_latency.labels(route.model_id).observe(time.perf_counter() - started)
        return Answer(200, data, encode_api.MSGPACK if as_msgpack else encode_api.JSON,
                      tuple(answer_headers.items()))


def to_response(answer: Answer) -> Response:
    response = Response(answer.body, status=answer.status, content_type=answer.content_type)
    for key, value in answer.headers:
        response.headers[key] = value
    return response


def mount_encode(app: QuartTrio, route: EncodeRoute, fast: FastReads | None) -> None:
    """Both doors of the encode route (see `EncodeRoute`); the fast one needs `fast`."""
    if fast is not None:
        fast.post(ENCODE_PREFIX, ENCODE_RULE, route.answer,
                  max_body=encode_api.MAX_BODY_BYTES)

    @app.post(ENCODE_RULE)
    async def encode(spec: str) -> Response:
        try:
            body = await request.get_data(cache=False, as_text=False)
        except RequestEntityTooLarge:
            return to_response(body_too_large())
        return to_response(await route.answer(spec, request.headers, body))

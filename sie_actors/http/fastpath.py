"""Hot reads without the framework: an ASGI layer in front of a Quart app's `asgi_app`.

Why: Quart's per-request machinery (request context, werkzeug routing, before/after hooks, the
Response object) costs about as much as all of hypercorn's HTTP/1.1 handling. Measured on this
project's 2-core machine with `sie-bench`'s load generator (32 kept-alive connections): a trivial
Quart-Trio route serves ~1,300 req/s on one core, a bare ASGI callable on the same hypercorn
~2,050 req/s, and the gateway's cached `GET /v1/configs/models` went from ~1,100 to ~1,800 req/s
through this layer.

What it answers: only the plain success case of the few GET routes registered with it — no
request body, the read token accepted, a handler that returns a body. Everything else (another
method or path, a failed auth check, an unknown model, a handler that returns None or raises) is
handed to Quart untouched, so every error body, redirect and status rule stays Quart's and the
route's own code. Responses carry the same `content-type` and `content-length` headers Quart
sends (hypercorn adds `date` and `server` to both), and the request metrics get the same names
and labels (`method`, the route's rule, `status`) as the Quart hook records.

A POST door (`post`) serves a route whose handler answers every case itself (errors included,
as the encode route does): a body with a `Content-Length` within the route's limit is read here
and handed over with the headers; a chunked or oversized body goes to Quart, whose limits apply.

Install with `app.asgi_app = FastReads(app.asgi_app, ...)`, Quart's documented middleware hook.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

import orjson
from werkzeug.datastructures import Headers

from sie_actors.http.app import internal_error_detail
from sie_actors.http.auth import Tokens, check_read
from sie_actors.http.metrics import ServiceMetrics

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
# `handler(rest)`: the response body, or None to let Quart answer. `rest` is the path after the
# registered prefix ("" for an exact route).
Handler = Callable[[str], "bytes | None"]

JSON = b"application/json"

log = logging.getLogger("sie_actors.http")


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer, independent of the framework that sends it."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def route_rest(path: str, prefix: str) -> str | None:
    """What follows `prefix` in `path`, when a route may take it: non-empty, not starting with
    "/" and without an empty segment (werkzeug would redirect those); else None."""
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):]
    return rest if rest and rest[0] != "/" and "//" not in rest else None


def headers_of(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """A request's raw header pairs as the `Headers` a route reads (latin-1, as HTTP has it)."""
    return Headers([(k.decode("latin1"), v.decode("latin1")) for k, v in raw])


# `handler(rest, headers, body)`: the answer to a POST, whatever it is.
PostHandler = Callable[[str, Headers, bytes], Awaitable[Answer]]


class FastReads:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, tokens: Tokens) -> None:
        self.app = app
        self.metrics = metrics
        self.tokens = tokens
        self._exact: dict[str, tuple[str, Handler]] = {}
        self._prefixes: list[tuple[str, str, Handler]] = []
        self._posts: list[tuple[str, str, PostHandler, int]] = []

    def exact(self, path: str, rule: str, handler: Handler) -> None:
        """Answer `GET path` (exactly) with `handler("")`; `rule` labels the metrics."""
        self._exact[path] = (rule, handler)

    def prefix(self, prefix: str, rule: str, handler: Handler) -> None:
        """Answer `GET prefix + rest` with `handler(rest)`, for a non-empty `rest` that does not
        start with "/" and has no empty segment (werkzeug would redirect those)."""
        self._prefixes.append((prefix, rule, handler))

    def post(self, prefix: str, rule: str, handler: PostHandler, *, max_body: int) -> None:
        """Answer `POST prefix + rest` (same `rest` rule as `prefix`) with
        `await handler(rest, headers, body)` when the body's `Content-Length` is at most
        `max_body`."""
        self._posts.append((prefix, rule, handler, max_body))

    def _route(self, path: str) -> tuple[str, Handler, str] | None:
        found = self._exact.get(path)
        if found is not None:
            return found[0], found[1], ""
        for prefix, rule, handler in self._prefixes:
            rest = route_rest(path, prefix)
            if rest is not None:
                return rule, handler, rest
        return None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "POST" and self._posts:
            return await self._post(scope, receive, send)
        if scope["method"] != "GET":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        route = self._route(scope["path"])
        if route is None:
            return await self.app(scope, receive, send)
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:  # several: Quart's guard answers the 400
                    return await self.app(scope, receive, send)
                authorization = value.decode("latin1")
            elif name in (b"content-length", b"transfer-encoding"):
                return await self.app(scope, receive, send)  # a body: Quart's limits apply
        rule, handler, rest = route
        try:
            check_read(self.tokens, authorization)
            body = handler(rest)
        except Exception:  # AuthError included
            body = None  # Quart runs the route and renders whatever it raises
        if body is None:
            return await self.app(scope, receive, send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", JSON),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe_request("GET", rule, scope["path"], 200,
                                     time.perf_counter() - started)

    async def _post(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        path = scope["path"]
        for prefix, rule, handler, max_body in self._posts:
            rest = route_rest(path, prefix)
            if rest is not None:
                break
        else:
            return await self.app(scope, receive, send)
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return await self.app(scope, receive, send)
                length = int(value)
            elif name == b"transfer-encoding":
                return await self.app(scope, receive, send)
        if length is None or length > max_body:
            return await self.app(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body arrived: nobody to answer
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = headers_of(scope["headers"])
        try:
            answer = await handler(rest, headers, bytes(body))
        except Exception as exc:  # the same safety net as the Quart app's: a JSON 500, logged
            log.exception("unhandled error on POST %s", path)
            answer = Answer(500, orjson.dumps({"detail": internal_error_detail(exc)}))
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [(b"content-type", answer.content_type.encode("latin1")),
                                (b"content-length", str(len(answer.body)).encode()),
                                *((k.encode("latin1"), v.encode("latin1"))
                                  for k, v in answer.headers)]})
        await send({"type": "http.response.body", "body": answer.body})
        self.metrics.observe_request("POST", rule, path, answer.status,
                                     time.perf_counter() - started)

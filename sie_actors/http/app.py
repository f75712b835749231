"""What every service's Quart-Trio app shares: JSON/YAML responses, error rendering, auth guards,
request metrics, and serving with hypercorn inside the caller's nursery.

Error bodies follow the wire contract: `{"detail": {"error": code, "message": ...}}` for domain
errors and `{"detail": "..."}` for auth and framework errors (404/405). Anything unexpected is
logged and rendered as a JSON 500 with an `internal_error` code: a safety net, never a design path
(every bad input has its own 4xx).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from sie_actors.domain.errors import DomainError
from sie_actors.http.auth import AuthError, Tokens, check_read, check_write, single_authorization
from sie_actors.http.metrics import ServiceMetrics

log = logging.getLogger("sie_actors.http")

JSON = "application/json"
YAML = "application/x-yaml"
MAX_BODY = 1_048_576
SERVER_LOGGER = "sie_actors.http.server"
METRICS_EXTENSION = "sie_metrics"


def app_metrics(app: QuartTrio) -> ServiceMetrics:
    """The ServiceMetrics an app was created with (`create_app`)."""
    return app.extensions[METRICS_EXTENSION]


class ServiceUnavailable(Exception):
    """503 with a domain-style detail (`nats_unavailable`, `store_unavailable`, ...)."""

    def __init__(self, code: str, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def detail(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, content_type=JSON)


def raw_response(data: bytes, status: int = 200, content_type: str = JSON) -> Response:
    return Response(data, status=status, content_type=content_type)


def internal_error_detail(exc: Exception) -> dict[str, str]:
    """The 500's detail: the safety net's, never a design path (every bad input has its 4xx)."""
    return {"error": "internal_error", "message": f"Unexpected {type(exc).__name__}; see logs."}


def error_response(status: int, detail: Any) -> Response:
    return json_response({"detail": detail}, status)


def body_limited_request_class(limits: dict[str, int]) -> type:
    """A request class whose body limit is `limits[prefix]` for paths under a prefix, else the
    app's `MAX_CONTENT_LENGTH`: encode bodies may be 32 MiB while config bodies stay at 1 MiB.
    Quart fixes a body's limit when it creates the request, before any route runs."""

    class BodyLimitedRequest(QuartTrio.request_class):
        def __init__(self, method, scheme, path, *args, max_content_length=None, **kwargs):
            for prefix, limit in limits.items():
                if path.startswith(prefix):
                    max_content_length = limit
            super().__init__(method, scheme, path, *args, max_content_length=max_content_length,
                             **kwargs)

    return BodyLimitedRequest


def create_app(name: str, metrics: ServiceMetrics, *,
               body_limits: dict[str, int] | None = None) -> QuartTrio:
    app = QuartTrio(name)
    if body_limits:
        app.request_class = body_limited_request_class(body_limits)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.extensions[METRICS_EXTENSION] = metrics  # routes refine their labels through it

    @app.errorhandler(DomainError)
    async def on_domain_error(exc: DomainError) -> Response:
        return error_response(exc.status, exc.detail())

    @app.errorhandler(AuthError)
    async def on_auth_error(exc: AuthError) -> Response:
        return error_response(exc.status, exc.detail)

    @app.errorhandler(ServiceUnavailable)
    async def on_unavailable(exc: ServiceUnavailable) -> Response:
        return error_response(exc.status, exc.detail())

    @app.errorhandler(HTTPException)
    async def on_http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            response = error_response(413, {"error": "payload_too_large",
                                            "message": f"Config body exceeds {MAX_BODY} bytes limit."})
            # The rest of the oversized body is never read; the connection cannot be reused.
            response.headers["Connection"] = "close"
            return response
        if exc.code == 400:
            return error_response(400, {"error": "bad_request",
                                        "message": exc.description or "Bad request"})
        return error_response(exc.code or 500, exc.name)

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, internal_error_detail(exc))

    @app.before_request
    async def start_timer() -> None:
        request.environ_started = time.perf_counter()  # type: ignore[attr-defined]

    @app.after_request
    async def record(response: Response) -> Response:
        if request.path != "/metrics":
            rule = request.url_rule.rule if request.url_rule is not None else None
            started = getattr(request, "environ_started", None)
            metrics.observe_request(request.method, rule, request.path, response.status_code,
                                    None if started is None else time.perf_counter() - started)
        return response

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.render()
        return raw_response(body, content_type=content_type)

    return app


def authorization() -> str | None:
    """The request's one `Authorization` header (several: 400)."""
    return single_authorization(request.headers.getlist("Authorization"))


def guard_read(tokens: Tokens) -> None:
    check_read(tokens, authorization())


def guard_write(tokens: Tokens) -> None:
    check_write(tokens, authorization())


async def serve_app(app: QuartTrio, host: str, port: int, shutdown: trio.Event, *,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
                    access_log: bool = False) -> None:
    """Serve `app` until `shutdown` is set; reports the bound URLs through `task_status`."""
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    # hypercorn logs its normal start-up ("Running on ...") at INFO on its error logger; under
    # that name an operator reads every start as an error. Our own name says what it is.
    config.errorlog = logging.getLogger(SERVER_LOGGER)
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = 30.0
    await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

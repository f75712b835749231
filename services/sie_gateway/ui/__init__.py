"""The fleet page: `/` and `/ui/` serve it, `/v1/fleet*` feed it.

The page is three static files in `static/` (HTML, CSS, a small script): no build step, nothing
fetched from the internet. Every number it shows is computed on the gateway
(`sie_gateway.fleet`), the page only lays it out.

Live updates: `GET /v1/fleet/stream` answers with NDJSON (one snapshot a line, an empty line as
keepalive) that the page reads with `fetch()` and a stream reader. Why not EventSource: it cannot
send an `Authorization` header, and the token must never go in the URL (logs, history, referrers).
Why not a WebSocket: it would accept an unauthenticated connection and check a token sent as
its first message, a second auth path beside `guard_read`; a streamed GET goes through exactly
the check every other read uses (401 without a token, 403 with a wrong one), and the feed only
flows one way anyway.

Auth: the static files need no token (they hold no data); the data routes need the read token
like every read. The page asks for the token only after a 401 and keeps it in sessionStorage.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import trio
from quart import Response
from quart_trio import QuartTrio

from sie_actors.domain.errors import ModelNotFound
from sie_actors.http.app import guard_read, json_response, raw_response
from sie_actors.http.auth import Tokens

from sie_gateway.fleet import model_detail
from sie_gateway.fleet_feed import FleetFeed

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".png": "image/png"}
# Defence in depth: the script inserts every value as text, and even if it did not, no inline
# script or handler (`onerror=...`) could run, and nothing can be loaded from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
NDJSON = "application/x-ndjson"


def _static_files() -> dict[str, tuple[bytes, str]]:
    return {path.name: (path.read_bytes(), TYPES[path.suffix])
            for path in STATIC.iterdir() if path.suffix in TYPES}


def _page(body: bytes, content_type: str) -> Response:
    response = raw_response(body, content_type=content_type)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


def mount_ui(app: QuartTrio, feed: FleetFeed, tokens: Tokens) -> None:
    files = _static_files()

    @app.get("/")
    @app.get("/ui/")
    async def fleet_page() -> Response:
        return _page(*files["index.html"])

    @app.get("/ui/static/<name>")
    async def fleet_static(name: str) -> Response:
        found = files.get(name)
        if found is None:
            return json_response({"detail": "Not Found"}, 404)
        return _page(*found)

    @app.get("/v1/fleet")
    async def fleet_now() -> Response:
        guard_read(tokens)
        return raw_response(orjson.dumps(feed.snapshot()))

    @app.get("/v1/fleet/models/<path:model_id>")
    async def fleet_model(model_id: str) -> Response:
        guard_read(tokens)
        detail = model_detail(feed.read_state(), model_id, feed.read_views(),
                              trio.current_time(), feed.heartbeat_timeout)
        if detail is None:
            raise ModelNotFound(model_id)
        return raw_response(orjson.dumps(detail))

    @app.get("/v1/fleet/stream")
    async def fleet_stream() -> Response:
        guard_read(tokens)
        response = Response(feed.stream(), content_type=NDJSON)
        response.timeout = None  # a page stays open for hours
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each line on at once
        return response

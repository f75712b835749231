"""The gateway's hot reads answer the same through the FastReads layer as through Quart: same
status, body, content headers and request metrics; everything but their 200 falls through."""

from __future__ import annotations

import orjson
import pytest

from sie_actors.domain.sync import MirrorPosition
from sie_actors.http.app import create_app
from sie_actors.http.auth import Tokens
from sie_actors.seed import default_dir, load_seed
from sie_gateway.metrics import GatewayMetrics
from sie_gateway.mirror import MirrorCell, MirrorState
from sie_gateway.routes import mount
from sie_gateway.workers import WorkerDirectory

PATHS = [
    "/v1/configs/models",
    "/v1/configs/models/BAAI/bge-m3/status",
    "/v1/configs/models/baai/BGE-M3/status",  # case-insensitive lookup
    "/v1/configs/models/no/such/status",  # unknown: Quart's 404
    "/v1/configs/models/BAAI/bge-m3",  # not a hot read: Quart's YAML
    "/v1/configs/models//BAAI/bge-m3/status",  # werkzeug's redirect
    "/v1/configs/models/",
    "/v1/configs/models?x=1",
]


def gateway(fast: bool, tokens: Tokens):
    registry = load_seed(default_dir("bundles"), default_dir("models")).registry()
    cell = MirrorCell(MirrorState(registry, MirrorPosition(7, "g"), bootstrapped=True))
    metrics = GatewayMetrics()
    app = create_app("sie_gateway", metrics)
    mount(app, cell, WorkerDirectory(), tokens, heartbeat_timeout=15.0, ready=lambda: True,
          metrics=metrics if fast else None)
    return app, metrics


async def answers(app, path: str, headers: dict) -> tuple:
    client = app.test_client()
    response = await client.get(path, headers=headers)
    return (response.status_code, await response.get_data(),
            response.headers.get("content-type"), response.headers.get("content-length"))


def requests_counted(metrics) -> dict:
    return {tuple(sample.labels.values()): sample.value
            for metric in metrics.http_requests.collect() for sample in metric.samples
            if sample.name.endswith("_total")}


async def test_a_request_with_a_body_goes_to_quart():
    app, metrics = gateway(True, Tokens())
    client = app.test_client()
    response = await client.get("/v1/configs/models", data=b"x" * 10)
    assert response.status_code == 200
    assert b'"models"' in await response.get_data()


# ---- sie-config: the model list, the epoch and the bundle list ---------------------------------

CONFIG_PATHS = [
    "/v1/configs/models",
    "/v1/configs/epoch",
    "/v1/configs/bundles",
    "/v1/configs/bundles/default",  # not a hot read: Quart's YAML
    "/v1/configs/models/BAAI/bge-m3",
    "/v1/configs/epoch/",
    "/v1/configs/models?x=1",
]


def config_service(fast: bool, tokens: Tokens):
    from sie_config.metrics import ConfigMetrics
    from sie_config.routes import mount as mount_config
    from sie_config.state import ConfigState
    from sie_config.writer import StateCell

    registry = load_seed(default_dir("bundles"), default_dir("models")).registry()
    cell = StateCell(ConfigState(registry, {}, frozenset(), epoch=3, generation="g"))
    metrics = ConfigMetrics()
    app = create_app("sie_config", metrics)
    mount_config(app, cell, tokens, writer=None, ticket=lambda: 0,
                 metrics=metrics if fast else None)
    return app, metrics


# ---- both services -------------------------------------------------------------------------------

# service -> (app builder, paths to compare, paths the fast layer answers, paths left to Quart)
SERVICES = {
    "gateway": (gateway, PATHS,
                ["/v1/configs/models", "/v1/configs/models/BAAI/bge-m3/status"],
                ["/v1/configs/models/no/such/status", "/v1/configs/models/BAAI/bge-m3"]),
    "sie-config": (config_service, CONFIG_PATHS,
                   ["/v1/configs/models", "/v1/configs/epoch", "/v1/configs/bundles"],
                   ["/v1/configs/bundles/default"]),
}


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("tokens, headers", [
    (Tokens(), {}),
    (Tokens(read="r"), {}),
    (Tokens(read="r"), {"Authorization": "Bearer wrong"}),
    (Tokens(read="r"), {"Authorization": "Bearer r"}),
    (Tokens(read="r", admin="a"), {"Authorization": "Bearer a"}),
    (Tokens(admin="a"), {"Authorization": "Bearer a"}),
])
async def test_fast_and_quart_answer_alike(service, tokens, headers):
    build, paths, _, _ = SERVICES[service]
    fast_app, fast_metrics = build(True, tokens)
    plain_app, plain_metrics = build(False, tokens)
    assert fast_app.asgi_app is not plain_app.asgi_app
    for path in paths:
        assert await answers(fast_app, path, headers) == await answers(plain_app, path, headers), path
    assert requests_counted(fast_metrics) == requests_counted(plain_metrics)


@pytest.mark.parametrize("service", SERVICES)
async def test_hot_reads_do_not_reach_quart(service):
    build, paths, hot, cold = SERVICES[service]
    app, _ = build(True, Tokens())
    fast = app.asgi_app
    reached = []
    inner = fast.app

    async def counting(scope, receive, send):
        reached.append(scope["path"])
        await inner(scope, receive, send)

    fast.app = counting
    for path in paths:
        await answers(app, path, {})
    assert not set(hot) & set(reached)
    assert set(cold) <= set(reached)


# ---- the POST door (the gateway's encode route) ------------------------------------------------
async def _asgi(app, path: str, headers: list[tuple[bytes, bytes]], messages: list[dict]):
    """Call an ASGI app once; returns what it sent."""
    sent, incoming = [], list(messages)

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": path, "headers": headers},
              receive, send)
    return sent


async def test_post_door_takes_bodies_within_the_limit_and_leaves_the_rest_to_the_app():
    from sie_actors.http.fastpath import Answer, FastReads

    to_app: list[str] = []

    async def app(scope, receive, send):
        to_app.append(scope["path"])

    async def handler(rest, headers, body):
        if rest == "boom":
            raise RuntimeError("a bug")
        return Answer(201, rest.encode() + b"|" + body, "text/plain",
                      (("x-seen", headers.get("X-In", "")),))

    metrics = GatewayMetrics()
    fast = FastReads(app, metrics, Tokens())
    fast.post("/p/", "/p/<path:x>", handler, max_body=10)
    two_parts = [{"type": "http.request", "body": b"hel", "more_body": True},
                 {"type": "http.request", "body": b"lo"}]
    sent = await _asgi(fast, "/p/a/b", [(b"content-length", b"5"), (b"x-in", b"v")], two_parts)
    assert sent[0]["status"] == 201 and sent[1]["body"] == b"a/b|hello"
    assert (b"x-seen", b"v") in sent[0]["headers"]
    assert (b"content-length", b"9") in sent[0]["headers"]
    assert requests_counted(metrics)[("POST", "/p/<path:x>", "201")] == 1
    for path, headers in [("/p/a", [(b"content-length", b"11")]),          # over the limit
                          ("/p/a", [(b"transfer-encoding", b"chunked")]),  # no length
                          ("/p/a", []),
                          ("/p/a", [(b"content-length", b"1"), (b"content-length", b"2")]),
                          ("/p//a", [(b"content-length", b"1")]),          # werkzeug's rules
                          ("/p/", [(b"content-length", b"1")]),
                          ("/q/a", [(b"content-length", b"1")])]:
        to_app.clear()
        assert await _asgi(fast, path, headers, [{"type": "http.request", "body": b"x"}]) == []
        assert to_app == [path], (path, headers)
    # a bug in the handler: the Quart app's safety net, a JSON 500 (never a design path)
    sent = await _asgi(fast, "/p/boom", [(b"content-length", b"1")],
                       [{"type": "http.request", "body": b"x"}])
    assert sent[0]["status"] == 500
    assert orjson.loads(sent[1]["body"])["detail"]["error"] == "internal_error"
    # a client that leaves before its body arrives gets no answer, and nothing is counted twice
    assert await _asgi(fast, "/p/a", [(b"content-length", b"5")], []) == []
    assert requests_counted(metrics)[("POST", "/p/<path:x>", "201")] == 1

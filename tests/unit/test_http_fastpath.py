"""The gateway's hot reads answer the same through the FastReads layer as through Quart: same
status, body, content headers and request metrics; everything but their 200 falls through."""

from __future__ import annotations

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

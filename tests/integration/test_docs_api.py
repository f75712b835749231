"""docs/api.md's endpoint table against the services themselves.

Every documented (service, method, path) is sent to a running service and must answer the
documented success status (so it is routed: no 404/405); every route a service registers must be
in the table. The apps are captured as the services build them, so a new route without a doc
row fails here.
"""

from __future__ import annotations

import re

import httpx
import pytest
import trio
import trio_websocket

from sie_actors.procs.polling import wait_for
from sie_cluster.cli import EXAMPLE_MODEL
from tests.conftest import REPO, base_env
from tests.integration.inproc import start_config, start_gateway, start_service

DOC = REPO / "docs" / "api.md"
ENCODE_PREFIX = "/v1/encode/"
DELTAS = "/v1/configs/deltas"  # needs `since` and `generation`: see `call`
SAMPLES = {"model_id": "BAAI/bge-m3", "bundle_id": "default", "file": "fleet.js"}
APP_NAMES = {"sie_config": "sie-config", "sie_gateway": "gateway", "sie_worker": "worker"}
READ, ADMIN = "docs-read-token", "docs-admin-token"
TOKENS = {"SIE_AUTH_TOKEN": READ, "SIE_ADMIN_TOKEN": ADMIN}
ROLE_TOKEN = {"none": None, "read": READ, "admin": ADMIN}


def endpoint_rows() -> list[dict[str, str]]:
    text = DOC.read_text(encoding="utf-8").split("## Endpoints", 1)[1]
    lines = [l for l in text.splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["service", "method", "path", "token", "success", "errors"]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break
        row = dict(zip(header, cells))
        row["path"] = row["path"].strip("`")
        rows.append(row)
    return rows


def pattern(path: str) -> str:
    """`/a/{x}/b` and `/a/<path:x>/b` both become `/a/{}/b`."""
    return re.sub(r"\{[^}]+\}|<[^>]+>", "{}", path)


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: SAMPLES[m.group(1)], path)


def test_the_table_is_well_formed():
    rows = endpoint_rows()
    assert {r["service"] for r in rows} == set(APP_NAMES.values())
    assert len({(r["service"], r["method"], r["path"]) for r in rows}) == len(rows)
    for row in rows:
        assert row["token"] in ("none", "read", "admin"), row
        assert re.match(r"\d{3}|frames", row["success"]), row


@pytest.fixture
async def cluster(nursery, tmp_path, monkeypatch):
    """sie-config, one worker and a gateway in-process; the Quart app of each, by service."""
    import sie_config.main
    import sie_gateway.main
    import sie_worker.main
    from sie_worker.main import run_service as run_worker
    from sie_worker.settings import WorkerSettings

    apps = {}
    for module in (sie_config.main, sie_gateway.main, sie_worker.main):
        original = module.create_app

        def capture(name, metrics, original=original, **kwargs):
            app = original(name, metrics, **kwargs)
            apps[APP_NAMES[name]] = app
            return app
        monkeypatch.setattr(module, "create_app", capture)

    config = await start_config(nursery, SIE_CONFIG_STORE_DIR=str(tmp_path / "store"), **TOKENS)
    worker = await start_service(nursery, run_worker, WorkerSettings.from_env(
        base_env(SIE_CONFIG_SERVICE_URL=config.url, **TOKENS), host="127.0.0.1", port=0,
        bundle="default", name="docs-worker"))
    gateway = await start_gateway(nursery, workers=(worker.url,), SIE_CONFIG_SERVICE_URL=config.url,
                                  **TOKENS)
    urls = {"sie-config": config.url, "gateway": gateway.url, "worker": worker.url}

    async def ready(url):
        async with httpx.AsyncClient() as client:
            return (await client.get(url + "/readyz")).status_code == 200
    for url in (worker.url, gateway.url):
        await wait_for(lambda url=url: ready(url), 15, f"{url} ready")
    return urls, apps


async def call(base: str, method: str, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "WS":
        async with trio_websocket.open_websocket_url("ws" + base[4:] + path) as ws:
            with trio.fail_after(10):
                frame = await ws.get_message()
        assert '"bundle_config_hash"' in frame
        return 101
    kwargs = {}
    if (method, path) == ("POST", "/v1/configs/models"):
        kwargs["content"] = EXAMPLE_MODEL.read_bytes()
    elif (method, path) == ("POST", "/v1/configs/resolve"):
        kwargs["json"] = {"model": SAMPLES["model_id"]}
    elif path.startswith(ENCODE_PREFIX):
        kwargs["json"] = {"items": [{"text": "hello"}]}
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as client:
        if path == DELTAS:  # since the service's epoch, in its generation (when it tells them)
            answer = await client.get("/v1/configs/epoch")
            position = answer.json() if answer.status_code == 200 else {}
            kwargs["params"] = {"since": position.get("epoch", 0),
                                "generation": position.get("generation", "unknown")}
        # a stream that never ends (the fleet feed): its status, without reading the body
        async with client.stream(method, concrete(path), **kwargs) as response:
            return response.status_code


async def test_every_documented_endpoint_answers_its_documented_success(cluster):
    """With both tokens configured: the documented token gets the documented success."""
    urls, _ = cluster
    for row in endpoint_rows():
        status = await call(urls[row["service"]], row["method"], row["path"],
                            ROLE_TOKEN[row["token"]])
        expected = 101 if row["success"].startswith("frames") else int(row["success"][:3])
        if row["path"].startswith(ENCODE_PREFIX):
            # No NATS in this cluster: the route is there and authorised, and says the queue is
            # down. Its 200 goes through the whole data plane in test_encode_cluster.py.
            expected = 503
        assert status == expected, row


async def test_the_token_column_is_what_each_endpoint_asks_for(cluster):
    """`read` rows refuse a request without a token (401); `admin` rows also refuse the read
    token (403); `none` rows need nothing (checked above, sent without a token)."""
    urls, _ = cluster
    for row in endpoint_rows():
        if row["token"] == "none":
            continue
        base = urls[row["service"]]
        assert await call(base, row["method"], row["path"]) == 401, row
        assert "401" in row["errors"] and "403" in row["errors"], row
        if row["token"] == "admin":
            assert await call(base, row["method"], row["path"], READ) == 403, row
        else:
            assert await call(base, row["method"], row["path"], READ) != 403, row


async def test_every_route_of_every_service_is_documented(cluster):
    _, apps = cluster
    documented = {(r["service"], r["method"], pattern(r["path"])) for r in endpoint_rows()}
    routed = set()
    for service, app in apps.items():
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":
                continue
            methods = {"WS"} if rule.websocket else set(rule.methods) - {"HEAD", "OPTIONS"}
            routed |= {(service, m, pattern(rule.rule)) for m in methods}
    assert set(apps) == set(APP_NAMES.values())
    assert routed - documented == set(), "routes missing from docs/api.md"
    # and nothing documented that no route serves (the status path is served by the model route)
    served = routed | {("gateway", "GET", "/v1/configs/models/{}/status")}
    assert documented - served == set(), "docs/api.md documents routes that do not exist"

"""Gateways as real processes against a real sie-config and nats-server: propagation, lost deltas,
generation changes, NATS outages, sie-config down at start."""

from __future__ import annotations

import time

import httpx
import pytest
import trio
import yaml

from sie_actors.domain.delta import ALL_SUBJECT
from sie_actors.http.metrics_text import sample_sum
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.procs import NatsServer, wait_until
from tests.conftest import REPO, base_env
from tests.integration.worker_support import post_model, post_until_accepted
from sie_actors.procs.polling import wait_for

pytestmark = pytest.mark.integration


def model(model_id: str) -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {"default": {
        "adapter_path": "sie_server.adapters.sentence_transformer:X",
        "max_batch_tokens": 64}}}).encode()


def write_ok(url: str, body: bytes) -> httpx.Response:
    r = post_until_accepted(url, body)
    assert r.status_code in (200, 201), r.text
    return r


def has_model(gateway_url: str, model_id: str) -> bool:
    return httpx.get(f"{gateway_url}/v1/configs/models/{model_id}", timeout=5).status_code == 200


def gateway_env(config_url: str | None, nats_url: str | None, **extra) -> dict:
    env = base_env()
    env.pop("SIE_BUNDLES_DIR")  # a gateway has no filesystem seed unless a test gives one
    env.pop("SIE_MODELS_DIR")
    env.update(extra)
    if config_url:
        env["SIE_CONFIG_SERVICE_URL"] = config_url
    if nats_url:
        env["SIE_NATS_URL"] = nats_url
    return env


def test_write_reaches_two_gateways(nats_server, spawn, tmp_path):
    config = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                          SIE_CONFIG_STORE_DIR=str(tmp_path / "store")))
    env = gateway_env(config.url, nats_server.url, SIE_GATEWAY_POLL_INTERVAL_S="60")
    gateways = [spawn("sie_gateway", env, ready_path="/readyz") for _ in range(2)]
    write_ok(config.url, model("warm/up"))
    for g in gateways:
        wait_until(lambda: has_model(g.url, "warm/up"), 10, what="warm-up model")
    delays = []
    with httpx.Client(timeout=5) as client:  # kept-alive connections: measure the gateway
        for i in range(5):
            r = client.post(config.url + "/v1/configs/models", content=model(f"prop/m{i}"))
            assert r.status_code == 201
            started = time.perf_counter()
            for g in gateways:
                url = f"{g.url}/v1/configs/models/prop/m{i}"
                wait_until(lambda: client.get(url).status_code == 200, 10, interval=0,
                           what="model on gateway")
            delays.append((time.perf_counter() - started) * 1000)
    print(f"201 -> served by both gateways: {[f'{d:.1f}' for d in delays]} ms")
    listed = httpx.get(gateways[1].url + "/v1/configs/models").json()["models"]
    entry = next(m for m in listed if m["model_id"] == "prop/m4")
    assert entry == {"model_id": "prop/m4", "profiles": ["default"],
                     "source": "gateway-registry"}
    # writes are not a gateway route
    refused = httpx.post(gateways[0].url + "/v1/configs/models", content=model("x/y"))
    assert refused.status_code == 405
    resolved = httpx.post(gateways[0].url + "/v1/configs/resolve", json={"model": "prop/m0"})
    assert resolved.json()["resolved_bundle"] == "default"


async def test_lost_delta_is_recovered_without_the_poll(nats_server, spawn, tmp_path, nursery):
    """The gateway listens on its own NATS; a relay forwards sie-config's deltas and drops one."""
    gateway_nats = NatsServer(log_path=tmp_path / "nats2.log").start()
    try:
        config = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                              SIE_CONFIG_STORE_DIR=str(tmp_path / "store")))
        gateway = spawn("sie_gateway", gateway_env(config.url, gateway_nats.url,
                                                   SIE_GATEWAY_POLL_INTERVAL_S="300"),
                        ready_path="/readyz")
        source = NatsLink(NatsSettings(url=nats_server.url, name="relay-in"))
        sink = NatsLink(NatsSettings(url=gateway_nats.url, name="relay-out"))
        await nursery.start(source.run)
        await nursery.start(sink.run)
        deltas = await source.subscribe(ALL_SUBJECT)
        drop = {"armed": True}

        async def relay():
            async for raw in deltas:
                if drop["armed"]:
                    drop["armed"] = False
                    continue
                await sink.publish_confirmed([(ALL_SUBJECT, raw)])

        nursery.start_soon(relay)
        await wait_for(lambda: source.connected and sink.connected, 10, "relay connected")
        await trio.to_thread.run_sync(write_ok, config.url, model("lost/one"))
        await trio.to_thread.run_sync(write_ok, config.url, model("seen/two"))
        started = time.perf_counter()
        await trio.to_thread.run_sync(
            lambda: wait_until(lambda: has_model(gateway.url, "lost/one"), 10,
                               what="lost model recovered"))
        print(f"gap recovered in {(time.perf_counter() - started) * 1000:.0f} ms")
        assert has_model(gateway.url, "seen/two")
        metrics = httpx.get(gateway.url + "/metrics").text
        assert sample_sum(metrics, "sie_gateway_config_resyncs_total", cause="gap") == 1
    finally:
        gateway_nats.kill()


def test_generation_change_forces_full_resync(nats_server, spawn):
    env = base_env(SIE_NATS_URL=nats_server.url)  # no store: a restart is a new generation
    config = spawn("sie_config", env)
    gateway = spawn("sie_gateway", gateway_env(config.url, nats_server.url,
                                               SIE_GATEWAY_POLL_INTERVAL_S="0.5"),
                    ready_path="/readyz")
    write_ok(config.url, model("old/run"))
    wait_until(lambda: has_model(gateway.url, "old/run"), 10, what="old model on gateway")
    config.kill()
    restarted = spawn("sie_config", env, port=config.port)
    assert httpx.get(restarted.url + "/v1/configs/epoch").json()["epoch"] == 0
    wait_until(lambda: not has_model(gateway.url, "old/run"), 10,
               what="gateway dropped the model sie-config no longer has")
    write_ok(restarted.url, model("new/run"))
    wait_until(lambda: has_model(gateway.url, "new/run"), 10, what="new model")
    metrics = httpx.get(gateway.url + "/metrics").text
    assert sample_sum(metrics, "sie_gateway_config_resyncs_total", cause="generation") >= 1


def test_nats_outage(nats_server, spawn, tmp_path):
    config = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                          SIE_CONFIG_STORE_DIR=str(tmp_path / "store")))
    env = gateway_env(config.url, nats_server.url, SIE_GATEWAY_POLL_INTERVAL_S="60")
    gateways = [spawn("sie_gateway", env, ready_path="/readyz") for _ in range(2)]
    write_ok(config.url, model("before/outage"))
    for g in gateways:
        wait_until(lambda: has_model(g.url, "before/outage"), 10, what="model before outage")
    nats_server.kill()
    for g in gateways:
        assert has_model(g.url, "before/outage")
        assert httpx.get(g.url + "/v1/configs/models").status_code == 200
    # sie-config may acknowledge (with a warning) a write that raced the kill; wait for the
    # refusal with a new id per attempt rather than assuming the very first one is refused.
    attempts: list[tuple[str, int]] = []

    def refused():
        model_id = f"during/outage-{len(attempts)}"
        attempts.append((model_id, post_model(config.url, model(model_id)).status_code))
        return attempts[-1][1] == 503

    wait_until(refused, 10, what="a write refused while NATS is down")
    nats_server.start()
    write_ok(config.url, model("after/outage"))
    for g in gateways:
        wait_until(lambda: has_model(g.url, "after/outage"), 10, what="model after outage")
        for model_id, status in attempts:
            # acknowledged writes reach every gateway after the outage; refused ones nowhere
            assert has_model(g.url, model_id) == (status == 201), (model_id, status)


def test_config_down_at_gateway_start(spawn, tmp_path):
    from sie_actors.procs import free_port
    config_port = free_port()
    env = gateway_env(f"http://127.0.0.1:{config_port}", None,
                      SIE_BUNDLES_DIR=str(REPO / "bundles"), SIE_MODELS_DIR=str(REPO / "models"))
    gateway = spawn("sie_gateway", env)
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 503 and ready.json()["detail"]["error"] == "not_ready"
    assert has_model(gateway.url, "BAAI/bge-m3")  # the seed is served meanwhile
    config = spawn("sie_config", base_env(SIE_CONFIG_STORE_DIR=str(tmp_path / "store")),
                   port=config_port)
    write_ok(config.url, model("after/start"))
    wait_until(lambda: httpx.get(gateway.url + "/readyz").status_code == 200, 20,
               what="gateway ready after sie-config came up")
    wait_until(lambda: has_model(gateway.url, "after/start"), 20, what="model after bootstrap")


async def test_sync_endpoint_reports_the_mirror_position(nursery):
    """`GET /v1/configs/sync`: the replica's epoch, generation and hashes, comparable field by
    field with sie-config's `/v1/configs/epoch` (what sie-chaos's checker compares)."""
    from sie_actors.procs import free_port
    from tests.integration.inproc import start_config, start_gateway

    config = await start_config(nursery)
    gateway = await start_gateway(nursery, SIE_CONFIG_SERVICE_URL=config.url,
                                  SIE_GATEWAY_POLL_INTERVAL_S="0.1")
    orphan = await start_gateway(nursery, SIE_CONFIG_SERVICE_URL=f"http://127.0.0.1:{free_port()}")
    async with config.client() as c:
        assert (await c.post("/v1/configs/models", content=model("sync/one"))).status_code == 201
        expected = (await c.get("/v1/configs/epoch")).json()
    assert expected["epoch"] == 1
    async with httpx.AsyncClient(timeout=5) as client:
        async def matches():
            body = (await client.get(gateway.url + "/v1/configs/sync")).json()
            return body if {k: body.get(k) for k in expected} == expected else None
        body = await wait_for(matches, 10, "gateway at sie-config's position")
        assert body["bootstrapped"] is True
        never = (await client.get(orphan.url + "/v1/configs/sync")).json()
    assert never["bootstrapped"] is False
    assert (never["epoch"], never["generation"]) == (0, "")

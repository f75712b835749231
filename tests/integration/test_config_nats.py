"""sie-config against a real nats-server and as a real process: deltas, NATS faults, crashes."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
import trio
import yaml

from sie_actors.domain.delta import ConfigDelta
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.procs import wait_until
from tests.conftest import base_env
from tests.integration.worker_support import post_model, post_until_accepted
from sie_actors.procs.polling import wait_for

pytestmark = pytest.mark.integration


def model(model_id: str, profile: str = "default",
          adapter: str = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
          ) -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {
        profile: {"adapter_path": adapter, "max_batch_tokens": 256}}}).encode()


async def test_deltas_have_exact_payloads(nats_server, spawn, tmp_path, nursery):
    svc = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                       SIE_CONFIG_STORE_DIR=str(tmp_path / "store")))
    link = NatsLink(NatsSettings(url=nats_server.url, name="test-subscriber"))
    await nursery.start(link.run)
    await wait_for(lambda: link.connected, 10, "subscriber connected")
    per_bundle = await link.subscribe("sie.config.models.default")
    everything = await link.subscribe("sie.config.models._all")
    # wait until sie-config itself is connected: a write is accepted (not 503)
    body = model("delta/model")

    async def accepted():
        r = await trio.to_thread.run_sync(post_model, svc.url, body)
        return r if r.status_code != 503 else None

    r = await wait_for(accepted, 15, "a write accepted")
    assert r.status_code == 201, r.text
    assert r.json()["warnings"] == [] and r.json()["router_id"] == "sie-config-test"
    with trio.fail_after(5):
        raw_bundle = await per_bundle.receive()
        raw_all = await everything.receive()
    assert raw_bundle == raw_all
    payload = orjson.loads(raw_bundle)
    assert list(payload)[:8] == ["router_id", "bundle_id", "epoch", "bundle_config_hash",
                                 "model_id", "profiles_added", "model_config",
                                 "affected_bundles"]
    epoch = httpx.get(svc.url + "/v1/configs/epoch").json()
    assert payload["router_id"] == "sie-config-test"
    assert payload["bundle_id"] == "default"
    assert payload["epoch"] == epoch["epoch"] == 1
    assert payload["generation"] == epoch["generation"]
    assert payload["bundle_config_hash"] == epoch["bundle_config_hashes"]["default"]
    assert payload["model_id"] == "delta/model"
    assert payload["profiles_added"] == ["default"]
    assert payload["affected_bundles"] == ["default"]
    assert yaml.safe_load(payload["model_config"]) == yaml.safe_load(body)
    assert ConfigDelta.from_json(raw_bundle).epoch == 1


def test_nats_killed_then_restarted(nats_server, spawn, tmp_path):
    svc = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                       SIE_CONFIG_STORE_DIR=str(tmp_path / "store")))
    assert post_until_accepted(svc.url, model("before/kill")).status_code == 201
    nats_server.kill()
    outcomes: list[httpx.Response] = []

    def refused():
        # A new id per attempt: a write that raced the kill may be acknowledged (with a warning),
        # and must not be mistaken for the refused one.
        r = post_model(svc.url, model(f"during/kill-{len(outcomes)}"))
        outcomes.append(r)
        return r.status_code == 503

    wait_until(refused, 10, what="503 while NATS is down")
    refused_id = f"during/kill-{len(outcomes) - 1}"
    assert outcomes[-1].json()["detail"]["error"] == "nats_unavailable"
    acked = [r for r in outcomes if r.status_code == 201]
    assert all(r.json()["warnings"][0].startswith("nats_publish_") for r in acked), \
        [r.text for r in acked]
    assert httpx.get(svc.url + f"/v1/configs/models/{refused_id}").status_code == 404
    assert httpx.get(svc.url + "/v1/configs/models/before/kill").status_code == 200
    assert httpx.get(svc.url + "/v1/configs/epoch").json()["epoch"] == 1 + len(acked)
    nats_server.start()
    r = post_until_accepted(svc.url, model("after/restart"))
    assert r.status_code == 201 and r.json()["warnings"] == []
    assert httpx.get(svc.url + f"/v1/configs/models/{refused_id}").status_code == 404
    assert httpx.get(svc.url + "/v1/configs/epoch").json()["epoch"] == 2 + len(acked)


def test_nats_paused_is_noticed_within_seconds(nats_server, spawn, tmp_path):
    svc = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                       SIE_CONFIG_STORE_DIR=str(tmp_path / "store"),
                                       SIE_NATS_PING_INTERVAL_S="1"))
    assert post_until_accepted(svc.url, model("before/pause")).status_code == 201
    nats_server.pause()
    try:
        paused_at = time.monotonic()
        outcomes = []

        def refused():
            r = post_model(svc.url, model(f"during/pause-{len(outcomes)}"))
            outcomes.append(r.status_code)
            if r.status_code == 201:
                # acknowledged while the pause was not yet noticed: it must say so
                warnings = r.json()["warnings"]
                assert warnings and warnings[0].startswith("nats_publish_"), r.text
            return r.status_code == 503

        wait_until(refused, 10, interval=0.2, what="writes refused while NATS is paused")
        noticed = time.monotonic() - paused_at
        print(f"paused NATS noticed after {noticed:.1f}s; outcomes {outcomes}")
        assert noticed <= 10
        # anything acknowledged meanwhile carried a warning: never a silent success
        epoch_now = httpx.get(svc.url + "/v1/configs/epoch").json()["epoch"]
        assert epoch_now == 1 + outcomes.count(201)
    finally:
        nats_server.resume()
    assert post_until_accepted(svc.url, model("after/pause"), timeout=30).status_code == 201


def test_starts_and_serves_reads_without_nats(spawn, tmp_path, nats_server):
    url = nats_server.url
    nats_server.kill()
    svc = spawn("sie_config", base_env(SIE_NATS_URL=url,
                                       SIE_CONFIG_STORE_DIR=str(tmp_path / "store")))
    assert httpx.get(svc.url + "/readyz").status_code == 200
    assert httpx.get(svc.url + "/v1/configs/models").status_code == 200
    r = post_model(svc.url, model("no/nats"))
    assert r.status_code == 503 and r.json()["detail"]["error"] == "nats_unavailable"
    nats_server.start()
    assert post_until_accepted(svc.url, model("no/nats")).status_code == 201


def test_sigkill_after_201_then_restore(spawn, tmp_path):
    store = str(tmp_path / "store")
    env = base_env(SIE_CONFIG_STORE_DIR=store, SIE_CONFIG_RESTORE="true")
    svc = spawn("sie_config", env)
    generation = httpx.get(svc.url + "/v1/configs/epoch").json()["generation"]
    for i in range(3):
        assert post_model(svc.url, model(f"crash/m{i}")).status_code == 201
    svc.kill()
    again = spawn("sie_config", env, port=svc.port)
    epoch = httpx.get(again.url + "/v1/configs/epoch").json()
    assert epoch["epoch"] == 3 and epoch["generation"] == generation
    for i in range(3):
        assert httpx.get(again.url + f"/v1/configs/models/crash/m{i}").status_code == 200
    assert post_model(again.url, model("crash/m3")).status_code == 201
    assert httpx.get(again.url + "/v1/configs/epoch").json()["epoch"] == 4

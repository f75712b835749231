"""Per-replica worker readiness on a real gateway, with in-process workers speaking the real
status protocol: acked, pending, ineligible (other bundle, not ready, silent), no bundles."""

from __future__ import annotations

import httpx
import yaml

from sie_actors.http.metrics_text import sample_sum
from sie_actors.testing.fake_worker import start_fake_worker
from sie_actors.procs.polling import wait_for
from tests.integration.inproc import start_config, start_gateway


def model(model_id: str, adapter="sie_server.adapters.sentence_transformer:X") -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {
        "default": {"adapter_path": adapter, "max_batch_tokens": 64}}}).encode()


async def get_json(url: str):
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
        return response.status_code, (response.json() if response.content else None)


async def test_readiness_states(nursery, tmp_path):
    config = await start_config(nursery)
    async with config.client() as c:
        hashes = (await c.get("/v1/configs/epoch")).json()["bundle_config_hashes"]
    acked = await start_fake_worker(nursery, "w-acked", bundle_config_hash=hashes["default"])
    stale = await start_fake_worker(nursery, "w-stale", bundle_config_hash="0" * 64)
    other = await start_fake_worker(nursery, "w-other", bundle="sglang",
                                    bundle_config_hash=hashes["default"])
    not_ready = await start_fake_worker(nursery, "w-notready", ready=False,
                                        bundle_config_hash=hashes["default"])
    gateway = await start_gateway(
        nursery, workers=(acked.url, stale.url, other.url, not_ready.url),
        SIE_CONFIG_SERVICE_URL=config.url, SIE_GATEWAY_POLL_INTERVAL_S="0.2",
        SIE_GATEWAY_HEARTBEAT_TIMEOUT_S="1.5")

    async def status():
        code, body = await get_json(gateway.url + "/v1/configs/models/BAAI/bge-m3/status")
        return body if code == 200 else None

    body = await wait_for(lambda: _with(status, lambda b: b["bundles"][0]
                                        ["total_eligible_workers"] == 2), 10, "two eligible")
    default = body["bundles"][0]
    assert body["model_id"] == "BAAI/bge-m3" and body["source"] == "gateway-registry"
    assert body["no_bundles"] is False and body["config_epoch"] == 0
    assert default["bundle_id"] == "default"
    assert default["expected_bundle_config_hash"] == hashes["default"]
    assert default["acked_workers"] == ["w-acked"]
    assert default["pending_workers"] == ["w-stale"]
    assert default["acked"] is False and body["all_bundles_acked"] is False

    # the stale worker catches up: all acked
    stale.update(bundle_config_hash=hashes["default"])
    body = await wait_for(lambda: _with(status, lambda b: b["all_bundles_acked"]), 10, "acked")
    assert body["bundles"][0]["acked_workers"] == ["w-acked", "w-stale"]

    # ready:false demotes at once (not sticky)
    stale.update(ready=False)
    body = await wait_for(lambda: _with(status, lambda b: b["bundles"][0]["acked_workers"]
                                        == ["w-acked"]), 10, "demoted")
    assert body["bundles"][0]["pending_workers"] == []

    # a silent worker leaves the lists after the heartbeat timeout
    acked.silent = True
    body = await wait_for(lambda: _with(status, lambda b: b["bundles"][0]
                                        ["total_eligible_workers"] == 0), 10, "silent gone")
    assert body["all_bundles_acked"] is False and body["bundles"][0]["acked"] is False

    # a new model flips to acked when the workers report the new hash
    acked.silent = False
    async with config.client() as c:
        assert (await c.post("/v1/configs/models", content=model("ready/new"))).status_code == 201
        new_hash = (await c.get("/v1/configs/epoch")).json()["bundle_config_hashes"]["default"]

    async def new_status():
        code, b = await get_json(gateway.url + "/v1/configs/models/ready/new/status")
        return b if code == 200 else None

    body = await wait_for(new_status, 10, "gateway sees ready/new")
    assert body["config_epoch"] == 1 and body["all_bundles_acked"] is False
    assert body["bundles"][0]["pending_workers"] == ["w-acked"]
    acked.update(bundle_config_hash=new_hash)
    body = await wait_for(lambda: _with(new_status, lambda b: b["all_bundles_acked"]), 10,
                          "acked on new hash")
    assert body["bundles"][0]["expected_bundle_config_hash"] == new_hash

    # bundles list counts connected (healthy) workers per bundle
    code, bundles = await get_json(gateway.url + "/v1/configs/bundles")
    counts = {b["bundle_id"]: b["connected_workers"] for b in bundles["bundles"]}
    assert counts["default"] == 1 and counts["sglang"] == 1
    assert all(b["source"] == "gateway-registry" for b in bundles["bundles"])

    # the metrics expose per-bundle acked/pending counts
    async with httpx.AsyncClient() as client:
        text = (await client.get(gateway.url + "/metrics")).text
    assert sample_sum(text, "sie_gateway_bundle_acked_workers", bundle="default") == 1


async def test_no_bundles_and_unknown(nursery, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "orphan.yaml").write_text(
        "sie_id: orphan/model\nprofiles:\n  default:\n    adapter_path: nowhere.adapter:X\n")
    config = await start_config(nursery, SIE_MODELS_DIR=str(models))
    gateway = await start_gateway(nursery, SIE_CONFIG_SERVICE_URL=config.url)
    await wait_for(lambda: _ok(gateway.url + "/readyz"), 10, "gateway ready")
    code, body = await get_json(gateway.url + "/v1/configs/models/orphan/model/status")
    assert code == 200
    assert body["no_bundles"] is True and body["bundles"] == []
    assert body["all_bundles_acked"] is False
    code, body = await get_json(gateway.url + "/v1/configs/models/no/such/status")
    assert code == 404 and body["detail"]["error"] == "model_not_found"
    assert body["detail"]["model_id"] == "no/such"  # not "no/such/status"
    assert "'no/such'" in body["detail"]["message"]


async def test_pending_gauge_of_a_bundle_without_models_is_zero(nursery):
    """transformers5 has no model in the baseline catalog: its worker reports the empty hash,
    which is what the gateway expects, so it is acked and nothing is pending."""
    config = await start_config(nursery)
    async with config.client() as c:
        hashes = (await c.get("/v1/configs/epoch")).json()["bundle_config_hashes"]
    assert hashes["transformers5"] == ""
    empty = await start_fake_worker(nursery, "w-t5", bundle="transformers5")
    stale = await start_fake_worker(nursery, "w-stale", bundle_config_hash="0" * 64)
    gateway = await start_gateway(nursery, workers=(empty.url, stale.url),
                                  SIE_CONFIG_SERVICE_URL=config.url)

    async def gauges():
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(gateway.url + "/metrics")).text
        if ('sie_gateway_workers{status="healthy"} 2.0' not in text
                or 'sie_gateway_bundle_acked_workers{bundle="transformers5"}' not in text):
            return None
        return text

    await wait_for(lambda: _ok(gateway.url + "/readyz"), 10, "gateway bootstrapped")
    text = await wait_for(gauges, 10, "both workers healthy, bundles known")
    assert 'sie_gateway_bundle_pending_workers{bundle="transformers5"} 0.0' in text
    assert 'sie_gateway_bundle_acked_workers{bundle="transformers5"} 1.0' in text
    assert 'sie_gateway_bundle_pending_workers{bundle="default"} 1.0' in text


async def _with(fetch, check):
    body = await fetch()
    return body if body is not None and check(body) else None


async def _ok(url: str) -> bool:
    code, _ = await get_json(url)
    return code == 200

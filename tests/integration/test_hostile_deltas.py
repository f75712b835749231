"""Hostile YAML inside a delta from a "trusted" producer (issue 15, defect 3): the same text
that once crashed the gateway's mirror and the worker's config actor (`!!timestamp 99999-01-01`
as `model_config`) is now a dropped delta. Both keep running and keep applying real writes."""

from __future__ import annotations


import httpx
import orjson

from sie_actors.domain.delta import ALL_SUBJECT, ConfigDelta, bundle_subject
from sie_actors.http.metrics_text import sample_sums_by
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.procs.polling import wait_for
from tests.integration.inproc import start_config, start_gateway, start_worker
from tests.integration.test_config_http import model

HOSTILE_CONFIGS = [
    "sie_id: probe/ts\nx: !!timestamp 99999-01-01\nprofiles: {d: {adapter_path: 'a:B'}}\n",
    "sie_id: probe/deep\nx: " + "[" * 5000 + "]" * 5000 + "\n",
    "sie_id: probe/omap\nx: !!omap [a: 1]\nprofiles: {d: {adapter_path: 'a:B'}}\n",
    "sie_id: probe/big\nx: 1" + "0" * 5000 + "\n",
]


async def test_hostile_deltas_are_dropped_and_consumers_keep_working(nats_server, nursery,
                                                                     tmp_path, caplog):
    config = await start_config(nursery, SIE_NATS_URL=nats_server.url,
                                SIE_CONFIG_STORE_DIR=str(tmp_path / "store"))
    gateway = await start_gateway(nursery, SIE_NATS_URL=nats_server.url,
                                  SIE_CONFIG_SERVICE_URL=config.url)
    worker = await start_worker(nursery, SIE_NATS_URL=nats_server.url,
                                SIE_CONFIG_SERVICE_URL=config.url, SIE_BUNDLE="default")
    forger = NatsLink(NatsSettings(url=nats_server.url, name="forger"))
    await nursery.start(forger.run)
    await wait_for(lambda: forger.connected, 10, "forger connected")
    async with httpx.AsyncClient(timeout=10) as http:
        async def ready(url: str) -> bool:
            return (await http.get(url + "/readyz")).status_code == 200
        await wait_for(lambda: ready(gateway.url), 15, "gateway ready")
        await wait_for(lambda: ready(worker.url), 15, "worker ready")
        position = (await http.get(config.url + "/v1/configs/epoch")).json()
        for round_ in range(3):
            for text in HOSTILE_CONFIGS:
                delta = ConfigDelta("sie-config", "default", position["epoch"] + 1, "0" * 64,
                                    "probe/x", ("d",), text, ("default",),
                                    position["generation"])
                payload = delta.to_json_bytes()
                await forger.publish_confirmed(
                    [(bundle_subject("default"), payload), (ALL_SUBJECT, payload)])

        # Every delta ends in exactly one final result on each consumer (applied, apply_failed,
        # refuted, stale, duplicate, ...); "buffered" and "held" are stops on the way and
        # "hash_mismatch" comes on top of "applied". Wait until each consumer has finished all.
        sent = 3 * len(HOSTILE_CONFIGS)

        async def finished(url: str, name: str) -> dict[str, float]:
            results = sample_sums_by((await http.get(url + "/metrics")).text, name, "result")
            final = sum(v for k, v in results.items()
                        if k not in ("buffered", "held", "hash_mismatch"))
            return results if final >= sent else None

        gateway_results = await wait_for(
            lambda: finished(gateway.url, "sie_gateway_config_deltas_total"), 30,
            "the gateway finished every hostile delta")
        worker_results = await wait_for(
            lambda: finished(worker.url, "sie_worker_deltas_total"), 30,
            "the worker finished every hostile delta")
        # the hostile text was really parsed (and refused) by each, not only skipped: it cannot
        # prove itself (its hash is not what it makes: it makes nothing), so each held it and
        # sie-config's epoch, behind it, refuted it
        assert gateway_results.get("refuted", 0) >= 1, gateway_results
        assert worker_results.get("refuted", 0) >= 1, worker_results
        unparsed = [r for r in caplog.records if "probe/x did not apply" in r.getMessage()]
        assert len(unparsed) >= 2, len(unparsed)
        # a real write after the storm still reaches both consumers
        r = await http.post(config.url + "/v1/configs/models", content=model("after/storm"))
        assert r.status_code == 201, r.text

        async def gateway_has() -> bool:
            return (await http.get(gateway.url + "/v1/configs/models/after/storm")).status_code \
                == 200

        async def worker_acked() -> bool:
            status = (await http.get(worker.url + "/v1/worker/status")).json()
            expected = (await http.get(config.url + "/v1/configs/epoch")).json()
            return status["bundle_config_hash"] == expected["bundle_config_hashes"]["default"]

        await wait_for(gateway_has, 20, "gateway applied the real write")
        await wait_for(worker_acked, 20, "worker applied the real write")
        for probe in ("probe/ts", "probe/omap", "probe/x"):
            got = await http.get(f"{gateway.url}/v1/configs/models/{probe}")
            assert got.status_code == 404, (probe, got.text)
        worker_metrics = (await http.get(worker.url + "/metrics")).text
    restarts = sample_sums_by(worker_metrics, "sie_worker_actor_restarts_total", "actor")
    assert all(v == 0 for v in restarts.values()), restarts
    crashes = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage()]
    assert crashes == []  # neither the gateway's mirror nor the worker's config actor
    assert orjson.loads(delta.to_json_bytes())["router_id"] == "sie-config"


async def test_a_body_whose_delta_cannot_fit_nats_is_refused_before_persisting(nats_server,
                                                                              nursery, tmp_path):
    """Under the 1 MiB body limit, but JSON doubles every quote: the delta would exceed the
    server's max_payload (1 MiB by default) and fail on both subjects after being persisted."""
    store = tmp_path / "store"
    config = await start_config(nursery, SIE_NATS_URL=nats_server.url,
                                SIE_CONFIG_STORE_DIR=str(store))
    quotes = '"' * 900_000
    body = (f"sie_id: big/quotes\nnotes: '{quotes}'\nprofiles:\n  default:\n"
            "    adapter_path: sie_server.adapters.sentence_transformer:X\n").encode()
    assert len(body) < 1_048_576
    async with config.client() as http:
        async def writable() -> bool:  # NATS connected: writes are no longer 503
            r = await http.post("/v1/configs/models?dry_run=true", content=model("probe/w"))
            return r.status_code == 201
        await wait_for(writable, 15, "sie-config connected to NATS")
        r = await http.post("/v1/configs/models", content=body, timeout=60)
        assert r.status_code == 413, r.text
        assert r.json()["detail"]["error"] == "payload_too_large"
        assert "NATS" in r.json()["detail"]["message"]
        assert (await http.get("/v1/configs/epoch")).json()["epoch"] == 0
    assert not (store / "models" / "big__quotes.yaml").exists()

"""Forged deltas from the trusted producer id against real processes (issue 15, defects 2 and 8).

Defect 2: one delta at epoch 10**12 on `sie.config.models.default` made a worker fetch the bundle
export about 500 times a second for minutes. Defect 8: a forged `epoch+1` delta applied by a
gateway stayed until the next real write. Both are deltas that do not prove themselves (no hash
we reproduce), so the mirror holds them and reads sie-config's epoch before they count: sie-config,
asked after the delta arrived, is behind its epoch, so it was never written. The delta is dropped
and counted, never applied, and costs no export (sie-chaos measured up to 5 s to converge after a
storm of them when they cost paced fetches).
"""

from __future__ import annotations

import httpx
import pytest
import trio
import yaml

from sie_actors.domain.delta import ALL_SUBJECT, ConfigDelta, bundle_subject
from sie_actors.procs import wait_until
from sie_actors.procs.polling import wait_for
from tests.integration.test_gateway_sync import gateway_env, has_model
from tests.integration.test_worker_nats import connected_link, start_config, start_worker
from tests.integration.worker_support import (config_epoch, metric, model_yaml,
                                              post_until_accepted, wait_worker_hash, worker_hash)

pytestmark = pytest.mark.integration

WORKER_EXPORT = "/v1/configs/bundles/<bundle_id>/export"
FULL_EXPORT = "/v1/configs/export"


def forged(epoch: int, generation: str, model_id: str, bundle_hash: str = "") -> bytes:
    text = yaml.safe_dump({"sie_id": model_id, "profiles": {"default": {
        "adapter_path": "sie_server.adapters.sentence_transformer:X", "max_batch_tokens": 64}}})
    return ConfigDelta(router_id="sie-config", bundle_id="default", epoch=epoch,
                       bundle_config_hash=bundle_hash, model_id=model_id,
                       profiles_added=("default",), model_config=text,
                       affected_bundles=("default",), generation=generation).to_json_bytes()


def exports_served(config_url: str, path: str) -> float:
    return metric(config_url, "sie_config_http_requests_total", method="GET", path=path)


async def publish(nats_url: str, nursery: trio.Nursery, subject: str, payload: bytes) -> None:
    link = await connected_link(nats_url, nursery, "forger")
    assert (await link.publish_confirmed([(subject, payload)])).all_confirmed


def resyncs_after_startup(url: str, name: str) -> float:
    return metric(url, name) - metric(url, name, cause="startup")


async def test_far_future_delta_costs_the_worker_no_resync(nats_server, spawn, tmp_path,
                                                           nursery):
    cfg = start_config(spawn, nats_server.url, tmp_path / "store")
    worker = start_worker(spawn, cfg.url, nats_server.url, "forged-worker")
    generation = config_epoch(cfg.url)["generation"]
    await publish(nats_server.url, nursery, bundle_subject("default"),
                  forged(10**12, generation, "forged/far"))
    await wait_for(lambda: metric(worker.url, "sie_worker_deltas_total", result="refuted") >= 1,
                   15, "the forged delta refuted")
    # a real write still flows: the worker was not left syncing or backing off for ever
    assert post_until_accepted(cfg.url, model_yaml("real/after-forgery")).status_code == 201
    expected = config_epoch(cfg.url)["bundle_config_hashes"]["default"]
    await trio.to_thread.run_sync(wait_worker_hash, worker.url, expected, 15, "the real write")
    # the bootstrap only (was: ~29,000 a minute); the forgery cost one epoch read
    assert exports_served(cfg.url, WORKER_EXPORT) == 1
    assert resyncs_after_startup(worker.url, "sie_worker_resyncs_total") == 0
    assert metric(worker.url, "sie_worker_epoch_polls_total", trigger="verify") >= 1
    assert worker_hash(worker.url) == config_epoch(cfg.url)["bundle_config_hashes"]["default"]


def start_gateway(spawn, cfg_url: str, nats_url: str, **extra: str):
    gateway = spawn("sie_gateway", gateway_env(cfg_url, nats_url, **extra), ready_path="/readyz")
    wait_until(lambda: metric(gateway.url, "sie_gateway_nats_connected") == 1, 15,
               what="gateway connected to NATS")
    return gateway


def gateway_sync(gateway_url: str) -> dict:
    return httpx.get(gateway_url + "/v1/configs/sync", timeout=5).json()


def same_as_config(gateway_url: str, config_url: str) -> bool:
    mine, theirs = gateway_sync(gateway_url), config_epoch(config_url)
    return all(mine[k] == theirs[k] for k in ("epoch", "generation", "bundles_hash",
                                              "bundle_config_hashes"))


async def test_far_future_delta_costs_the_gateway_no_resync(nats_server, spawn, tmp_path,
                                                            nursery):
    cfg = start_config(spawn, nats_server.url, tmp_path / "store")
    gateway = start_gateway(spawn, cfg.url, nats_server.url)
    generation = config_epoch(cfg.url)["generation"]
    await publish(nats_server.url, nursery, ALL_SUBJECT, forged(10**12, generation, "forged/far"))
    await wait_for(lambda: metric(gateway.url, "sie_gateway_config_deltas_total",
                                  result="refuted") >= 1, 15, "the forged delta refuted")
    assert post_until_accepted(cfg.url, model_yaml("real/after-forgery")).status_code == 201
    await wait_for(lambda: has_model(gateway.url, "real/after-forgery"), 15, "the real write")
    assert exports_served(cfg.url, FULL_EXPORT) == 1  # the bootstrap only
    assert resyncs_after_startup(gateway.url, "sie_gateway_config_resyncs_total") == 0
    assert same_as_config(gateway.url, cfg.url)
    assert not has_model(gateway.url, "forged/far")


async def test_forged_next_epoch_is_refuted_before_it_is_applied(nats_server, spawn, tmp_path,
                                                                  nursery):
    cfg = start_config(spawn, nats_server.url, tmp_path / "store")
    assert post_until_accepted(cfg.url, model_yaml("real/first")).status_code == 201
    # a poll far away: only the verify read can judge the forgery in time
    gateway = start_gateway(spawn, cfg.url, nats_server.url, SIE_GATEWAY_POLL_INTERVAL_S="60")
    await wait_for(lambda: same_as_config(gateway.url, cfg.url), 15, "gateway in step")
    before = config_epoch(cfg.url)
    deltas = "sie_gateway_config_deltas_total"
    applied = metric(gateway.url, deltas, result="applied")
    # nothing on the delta itself contradicts it (no hash): only sie-config can
    await publish(nats_server.url, nursery, ALL_SUBJECT,
                  forged(before["epoch"] + 1, before["generation"], "forged/next"))
    await wait_for(lambda: metric(gateway.url, deltas, result="refuted") == 1, 15,
                   "the forgery refuted")
    assert metric(gateway.url, deltas, result="held") == 1
    assert metric(gateway.url, deltas, result="applied") == applied  # never shown
    assert resyncs_after_startup(gateway.url, "sie_gateway_config_resyncs_total") == 0
    assert same_as_config(gateway.url, cfg.url) and not has_model(gateway.url, "forged/next")
    assert config_epoch(cfg.url)["epoch"] == before["epoch"]

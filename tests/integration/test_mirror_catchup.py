"""A gateway and a worker cut off NATS while sie-config keeps writing recover by catching up (the
deltas since their epoch, `GET /v1/configs/deltas`), not by a full snapshot, and then equal
sie-config. All real processes; the fault is a proxy between them and nats-server that drops
their connections (sie-config stays connected, so its writes succeed meanwhile)."""

from __future__ import annotations

import time

import httpx
import pytest

from sie_actors.procs import wait_until
from sie_actors.store import ConfigStore
from tests.integration.test_gateway_sync import gateway_env
from tests.integration.test_worker_nats import NO_POLL, start_config, start_worker
from tests.integration.worker_support import (NatsProxy, config_epoch, metric, model_yaml,
                                              post_until_accepted, worker_hash, worker_status)

pytestmark = pytest.mark.integration

HEAL_DEADLINE = 10.0
REPORT = ("epoch", "generation", "bundles_hash", "bundle_config_hashes")


def gateway_position(url: str) -> dict:
    body = httpx.get(url + "/v1/configs/sync", timeout=5).json()
    return {k: body.get(k) for k in REPORT}


def sie_config_position(url: str) -> dict:
    body = config_epoch(url)
    return {k: body[k] for k in REPORT}


def snapshots(url: str, name: str) -> tuple[float, float]:
    return metric(url, name, path="catchup"), metric(url, name, path="full")


def start_mirrors(spawn, cfg_url: str, nats_url: str, worker_name: str, **gateway_extra: str):
    """A gateway and a worker with routine polls off, connected to NATS."""
    gateway = spawn("sie_gateway", gateway_env(cfg_url, nats_url,
                                               SIE_GATEWAY_POLL_INTERVAL_S=NO_POLL,
                                               **gateway_extra),
                    ready_path="/readyz")
    worker = start_worker(spawn, cfg_url, nats_url, worker_name, SIE_WORKER_POLL_S=NO_POLL)
    wait_until(lambda: metric(gateway.url, "sie_gateway_nats_connected") == 1, 15,
               what="gateway connected to NATS")
    return gateway, worker


def write_and_hear(cfg_url: str, gateway, worker, *model_ids: str) -> None:
    """Write these models and wait until both mirrors equal sie-config."""
    for model_id in model_ids:
        assert post_until_accepted(cfg_url, model_yaml(model_id)).status_code == 201
    wait_until(lambda: gateway_position(gateway.url) == sie_config_position(cfg_url), 10,
               what="the gateway heard the writes")
    wait_until(lambda: worker_hash(worker.url)
               == config_epoch(cfg_url)["bundle_config_hashes"]["default"], 10,
               what="the worker heard the writes")


def cut(proxy, gateway, worker) -> None:
    proxy.cut()
    for url, name in ((gateway.url, "sie_gateway_nats_connected"),
                      (worker.url, "sie_worker_nats_connected")):
        wait_until(lambda: metric(url, name) == 0, 10, what=f"{url} noticed the cut")


def snapshot_paths(gateway, worker) -> dict[str, tuple[float, float]]:
    """(catch-ups, full snapshots) so far, per mirror."""
    return {"gateway": snapshots(gateway.url, "sie_gateway_config_snapshots_total"),
            "worker": snapshots(worker.url, "sie_worker_snapshots_total")}


def assert_caught_up_not_fetched(before: dict, after: dict) -> None:
    """Each mirror recovered by at least one more catch-up and no new full snapshot."""
    for mirror in ("gateway", "worker"):
        assert after[mirror][0] >= before[mirror][0] + 1, (mirror, before, after)
        assert after[mirror][1] == before[mirror][1], (mirror, before, after)


def wait_caught_up(cfg_url: str, gateway, worker) -> None:
    expected = sie_config_position(cfg_url)
    wait_until(lambda: gateway_position(gateway.url) == expected, HEAL_DEADLINE,
               interval=0.02, what="the gateway caught up")
    wait_until(lambda: worker_hash(worker.url) == expected["bundle_config_hashes"]["default"],
               HEAL_DEADLINE, interval=0.02, what="the worker caught up")


def restart_after_an_unpublished_write(spawn, nats_url: str, store_dir, cfg, model_id: str):
    """SIGKILL sie-config, leave what a kill between the store's commit and the publish leaves
    (the next epoch and its model stored, nothing published), and start it again."""
    cfg.kill()
    store = ConfigStore.open(str(store_dir))
    store.commit_write(model_id, model_yaml(model_id).decode(), store.read_epoch() + 1)
    return start_config(spawn, nats_url, store_dir, port=cfg.port)


def test_mirrors_cut_off_nats_catch_up_from_the_deltas_they_missed(nats_server, spawn, tmp_path):
    proxy = NatsProxy(nats_server.port)
    try:
        cfg = start_config(spawn, nats_server.url, tmp_path / "store")
        gateway, worker = start_mirrors(spawn, cfg.url, proxy.url, "catchup-worker",
                                        SIE_NATS_PING_INTERVAL_S="1")
        write_and_hear(cfg.url, gateway, worker, "heard/before")
        before = snapshot_paths(gateway, worker)
        assert before["gateway"][1] >= 1 and before["worker"][1] >= 1  # bootstraps: full

        cut(proxy, gateway, worker)
        missed = [f"missed/m{i}" for i in range(3)]
        for model_id in missed:
            assert post_until_accepted(cfg.url, model_yaml(model_id)).status_code == 201
        expected = sie_config_position(cfg.url)
        assert gateway_position(gateway.url) != expected  # they really missed them

        restored = time.monotonic()
        proxy.restore()
        wait_until(lambda: gateway_position(gateway.url) == expected, HEAL_DEADLINE,
                   interval=0.02, what="the gateway caught up")
        wait_until(lambda: worker_hash(worker.url) == expected["bundle_config_hashes"]["default"],
                   HEAL_DEADLINE, interval=0.02, what="the worker caught up")
        print(f"\nboth equal sie-config {(time.monotonic() - restored) * 1000:.0f} ms after "
              "the proxy was restored")

        models = {m["model_id"] for m in
                  httpx.get(gateway.url + "/v1/configs/models", timeout=5).json()["models"]}
        assert set(missed) <= models
        assert set(missed) <= {m["name"] for m in worker_status(worker.url)["models"]}
        # by the catch-up path: one more catch-up each, no new full snapshot
        assert_caught_up_not_fetched(before, snapshot_paths(gateway, worker))
        assert metric(cfg.url, "sie_config_delta_reads_total", result="ok") >= 2
    finally:
        proxy.close()


def test_mirrors_catch_up_over_a_sie_config_killed_mid_write(nats_server, spawn, tmp_path):
    """sie-config is SIGKILLed after persisting a write it never published: the restarted one
    is an epoch ahead of every mirror, with a fresh delta log. The log is seeded from the
    store's newest files, so the mirrors still recover by a catch-up, not a full snapshot."""
    store_dir = tmp_path / "store"
    proxy = NatsProxy(nats_server.port)
    try:
        cfg = start_config(spawn, nats_server.url, store_dir)
        gateway, worker = start_mirrors(spawn, cfg.url, proxy.url, "restart-worker",
                                        SIE_NATS_PING_INTERVAL_S="1")
        write_and_hear(cfg.url, gateway, worker, "heard/one", "heard/two")
        before = snapshot_paths(gateway, worker)

        cut(proxy, gateway, worker)  # they notice only when it is restored, all in place
        cfg = restart_after_an_unpublished_write(spawn, nats_server.url, store_dir, cfg,
                                                 "killed/mid-write")
        assert sie_config_position(cfg.url)["epoch"] == 3
        assert gateway_position(gateway.url)["epoch"] == 2

        proxy.restore()
        wait_caught_up(cfg.url, gateway, worker)
        assert "killed/mid-write" in {m["name"] for m in worker_status(worker.url)["models"]}
        assert_caught_up_not_fetched(before, snapshot_paths(gateway, worker))
    finally:
        proxy.close()


def test_a_restarted_sie_config_announces_itself_and_the_mirrors_catch_up_at_once(
        nats_server, spawn, tmp_path):
    """Nothing else tells them: NATS stays up (no reconnect), routine polls are off, and no
    write follows. The restarted sie-config's announcement on `sie.config.started` makes each
    mirror read the epoch, find itself behind, and catch up."""
    store_dir = tmp_path / "store"
    cfg = start_config(spawn, nats_server.url, store_dir)
    gateway, worker = start_mirrors(spawn, cfg.url, nats_server.url, "announce-worker")
    write_and_hear(cfg.url, gateway, worker, "heard/one")
    announced_before = metric(worker.url, "sie_worker_epoch_polls_total", trigger="announce",
                              result="ok")

    cfg = restart_after_an_unpublished_write(spawn, nats_server.url, store_dir, cfg,
                                             "killed/unannounced")
    wait_caught_up(cfg.url, gateway, worker)
    assert metric(worker.url, "sie_worker_epoch_polls_total", trigger="announce",
                  result="ok") >= announced_before + 1

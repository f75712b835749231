"""sie-worker as a real process against a real sie-config (no NATS): the seed, the bootstrap,
readiness while sie-config is down, the unknown-bundle start error, graceful stop."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from sie_actors.domain.worker_status import WorkerStatus, status_ws_url
from sie_actors.procs import free_port, wait_until
from tests.conftest import base_env
from tests.integration.worker_support import (config_epoch, metric, model_yaml, post_model,
                                              spawn_worker, worker_env, worker_status)

pytestmark = pytest.mark.integration

READ, ADMIN = "read-token", "admin-token"


def test_hash_equals_sie_config_on_seed_and_after_bootstrap(spawn, tmp_path):
    cfg = spawn("sie_config", base_env(SIE_CONFIG_STORE_DIR=str(tmp_path / "store"),
                                       SIE_AUTH_TOKEN=READ, SIE_ADMIN_TOKEN=ADMIN))
    before = config_epoch(cfg.url, READ)["bundle_config_hashes"]

    # seed only (no SIE_CONFIG_SERVICE_URL): ready at once, same hash as sie-config's seed
    seed = spawn_worker(spawn, worker_env(), "seed-worker", ready_path="/readyz")
    frame = worker_status(seed.url)
    assert frame["ready"] is True and frame["bundle"] == "default"
    assert frame["bundle_config_hash"] == before["default"] != ""
    sglang = spawn_worker(spawn, worker_env(), "sglang-worker", bundle="sglang")
    assert worker_status(sglang.url)["bundle_config_hash"] == before["sglang"] != ""

    # an API-added model, then a worker that bootstraps with the read token only
    r = post_model(cfg.url, model_yaml("boot/api-model"), token=ADMIN)
    assert r.status_code == 201, r.text
    after = config_epoch(cfg.url, READ)
    assert after["bundle_config_hashes"]["default"] != before["default"]
    booted = spawn_worker(spawn, worker_env(config_url=cfg.url, SIE_AUTH_TOKEN=READ,
                                            SIE_ADMIN_TOKEN=""),
                          "booted-worker", ready_path="/readyz")
    frame = worker_status(booted.url)
    assert frame["ready"] is True
    assert frame["bundle_config_hash"] == after["bundle_config_hashes"]["default"]
    assert "boot/api-model" in {m["name"] for m in frame["models"]}
    assert all(m["state"] == "available" and m["memory_bytes"] == 0 for m in frame["models"])
    assert metric(booted.url, "sie_worker_epoch") == after["epoch"] == 1
    assert metric(booted.url, "sie_worker_snapshot_hash_mismatches_total") == 0
    assert metric(booted.url, "sie_worker_bootstrap_failures_total") == 0
    # the status frame parses as the gateway reads it
    parsed = WorkerStatus.parse(httpx.get(booted.url + "/v1/worker/status").content)
    assert parsed.name == "booted-worker" and parsed.ready
    # the seed worker did not move: it has no sie-config to follow
    assert worker_status(seed.url)["bundle_config_hash"] == before["default"]


def test_unknown_bundle_is_a_startup_error():
    proc = subprocess.run(
        [sys.executable, "-m", "sie_worker", "serve", "--host", "127.0.0.1", "--port",
         str(free_port()), "--bundle", "no-such-bundle"],
        env=worker_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "unknown bundle 'no-such-bundle'" in proc.stderr


async def test_not_ready_until_sie_config_comes_up(spawn, tmp_path):
    # a store that already holds an API model, so the bootstrap is told apart from the seed
    store_env = base_env(SIE_CONFIG_STORE_DIR=str(tmp_path / "store"), SIE_CONFIG_RESTORE="true")
    writer = spawn("sie_config", store_env)
    assert post_model(writer.url, model_yaml("late/model")).status_code == 201
    expected = config_epoch(writer.url)["bundle_config_hashes"]["default"]
    writer.kill()

    config_port = free_port()
    config_url = f"http://127.0.0.1:{config_port}"
    worker = spawn_worker(spawn, worker_env(config_url=config_url), "early-worker")
    r = httpx.get(worker.url + "/readyz")
    assert r.status_code == 503
    assert r.json()["detail"]["error"] == "not_ready" and r.json()["detail"]["message"]
    async with open_websocket_url(status_ws_url(worker.url)) as ws:
        first = WorkerStatus.parse(await ws.get_message())
        assert first.ready is False and first.bundle_config_hash != expected  # the seed
        wait_until(lambda: metric(worker.url, "sie_worker_bootstrap_failures_total") >= 1, 10,
                   what="a failed bootstrap attempt")

        spawn("sie_config", store_env, port=config_port)
        with trio.fail_after(15):
            while True:
                frame = WorkerStatus.parse(await ws.get_message())
                if frame.ready:
                    break
        # the first ready frame already carries sie-config's state (it bootstrapped)
        assert frame.bundle_config_hash == expected
    assert httpx.get(worker.url + "/readyz").status_code == 200


async def test_sigterm_reports_not_ready_then_exits_zero(spawn):
    worker = spawn_worker(spawn, worker_env(), "stopping-worker", ready_path="/readyz")
    codes = []

    async def stop() -> None:  # SIGTERM (SIGKILL after 10 s); in a thread, so frames are read
        codes.append(await trio.to_thread.run_sync(worker.stop))

    async with open_websocket_url(status_ws_url(worker.url)) as ws:
        assert WorkerStatus.parse(await ws.get_message()).ready is True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop)
            with trio.fail_after(10):
                while WorkerStatus.parse(await ws.get_message()).ready:
                    pass
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.get_message()
    assert codes == [0]

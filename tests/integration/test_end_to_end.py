"""End to end on a cluster of real processes: the admin CLI adds a model and waits until both
gateways report it acked; a restarted worker comes back with the same hash; a worker whose NATS
subscription missed a delta converges by itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sie_actors.domain.delta import bundle_subject
from sie_actors.procs import wait_until
from tests.conftest import base_env
from tests.integration.worker_support import (NatsProxy, config_epoch, model_yaml,
                                              worker_hash)

pytestmark = pytest.mark.integration


def sie(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sie_tools.admin", *args], env=env,
                          capture_output=True, text=True, timeout=90)


def test_cli_add_wait_restart_and_missed_delta(nats_server, spawn, tmp_path):
    proxy = NatsProxy(nats_server.port)
    try:
        config = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                              SIE_CONFIG_STORE_DIR=str(tmp_path / "store"),
                                              SIE_CONFIG_RESTORE="true"), ready_path="/readyz")
        worker_env = base_env(SIE_NATS_URL=proxy.url, SIE_CONFIG_SERVICE_URL=config.url,
                              SIE_WORKER_POLL_S="60")
        worker = spawn("sie_worker", worker_env, args=["--bundle", "default", "--name", "w-e2e"],
                       ready_path="/readyz")
        gateway_env = {k: v for k, v in base_env(
            SIE_NATS_URL=nats_server.url, SIE_CONFIG_SERVICE_URL=config.url,
            SIE_GATEWAY_WORKERS=worker.url).items()
            if k not in ("SIE_BUNDLES_DIR", "SIE_MODELS_DIR")}
        gateways = [spawn("sie_gateway", gateway_env, ready_path="/readyz") for _ in range(2)]
        cli_env = dict(os.environ, SIE_CONFIG_URL=config.url,
                       SIE_GATEWAY_URLS=",".join(g.url for g in gateways))

        first = tmp_path / "first.yaml"
        first.write_bytes(model_yaml("e2e/first"))
        # One attempt: every service above reported ready, so a first add that fails is a bug.
        added = sie(cli_env, "models", "add", str(first), "--wait", "--timeout", "30")
        assert added.returncode == 0, added.stdout + added.stderr
        assert "all 2 gateway replica(s) acked e2e/first" in added.stdout, added.stdout

        # a restarted worker bootstraps the API-added model: same hash, acked again
        expected = config_epoch(config.url)["bundle_config_hashes"]["default"]
        worker.kill()
        worker = spawn("sie_worker", worker_env, args=["--bundle", "default", "--name", "w-e2e"],
                       port=worker.port, ready_path="/readyz")
        assert worker_hash(worker.url) == expected
        status = sie(cli_env, "models", "status", "e2e/first", "--wait", "--timeout", "30")
        assert status.returncode == 0, status.stdout + status.stderr

        # the worker's subscription misses a delta; the next write makes it converge by itself
        proxy.drop_subject = bundle_subject("default")
        missed = tmp_path / "missed.yaml"
        missed.write_bytes(model_yaml("e2e/missed"))
        assert sie(cli_env, "models", "add", str(missed)).returncode == 0
        wait_until(lambda: proxy.dropped >= 1, 10, what="the delta dropped on its way")
        proxy.drop_subject = None
        assert worker_hash(worker.url) == expected  # it really missed it
        after = tmp_path / "after.yaml"
        after.write_bytes(model_yaml("e2e/after"))
        assert sie(cli_env, "models", "add", str(after)).returncode == 0
        status = sie(cli_env, "models", "status", "e2e/missed", "--wait", "--timeout", "30")
        assert status.returncode == 0, status.stdout + status.stderr
        assert worker_hash(worker.url) == \
            config_epoch(config.url)["bundle_config_hashes"]["default"]
    finally:
        proxy.close()

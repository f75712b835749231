"""A worker against a sie-config without `/v1/configs/bundles/{id}/export` nor
`/v1/configs/deltas` (the original's, or ours before those endpoints existed): a rolling upgrade
that replaces workers first (issue 12).

The older service is played by our sie-config behind a proxy that answers those routes with
the original framework's `404 {"detail": "Not Found"}`. The worker falls back to the full export
with the admin token, or to per-model reads with the read token, and follows writes from there
(its catch-up reads find no endpoint and take the same fallback).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from sie_actors.procs import LOOPBACK, wait_until
from tests.conftest import base_env
from tests.integration.worker_support import (config_epoch, metric, model_yaml, post_model,
                                              spawn_worker, worker_env, worker_hash)

pytestmark = pytest.mark.integration

READ, ADMIN = "read-token", "admin-token"


class OlderConfig:
    """Forwards GETs to a real sie-config, except the bundle export and the deltas: 404 as
    FastAPI says it."""

    def __init__(self, upstream: str) -> None:
        self.hidden = 0         # bundle exports asked for
        self.hidden_deltas = 0  # catch-up reads asked for
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/v1/configs/bundles/") and self.path.endswith("/export"):
                    owner.hidden += 1
                    self._send(404, b'{"detail":"Not Found"}', "application/json")
                    return
                if self.path.split("?", 1)[0] == "/v1/configs/deltas":
                    owner.hidden_deltas += 1
                    self._send(404, b'{"detail":"Not Found"}', "application/json")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
                response = httpx.get(upstream + self.path, headers=headers, timeout=10)
                self._send(response.status_code, response.content,
                           response.headers.get("content-type", "application/octet-stream"))

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("token", ["admin", "read"])
def test_worker_falls_back_when_the_bundle_export_is_missing(spawn, tmp_path, token):
    cfg = spawn("sie_config", base_env(SIE_CONFIG_STORE_DIR=str(tmp_path / "store"),
                                       SIE_AUTH_TOKEN=READ, SIE_ADMIN_TOKEN=ADMIN))
    assert post_model(cfg.url, model_yaml("mixed/before"), token=ADMIN).status_code == 201
    older = OlderConfig(cfg.url)
    try:
        tokens = ({"SIE_ADMIN_TOKEN": ADMIN, "SIE_AUTH_TOKEN": ""} if token == "admin"
                  else {"SIE_AUTH_TOKEN": READ, "SIE_ADMIN_TOKEN": ""})
        worker = spawn_worker(spawn, worker_env(config_url=older.url, SIE_WORKER_POLL_S="0.3",
                                                **tokens), f"mixed-{token}", ready_path="/readyz")
        expected = lambda: config_epoch(cfg.url, READ)["bundle_config_hashes"]["default"]
        assert worker_hash(worker.url) == expected()
        assert older.hidden >= 1  # it did ask for the bundle export first
        # a later write reaches it through the poll and the same fallback
        assert post_model(cfg.url, model_yaml("mixed/after"), token=ADMIN).status_code == 201
        wait_until(lambda: worker_hash(worker.url) == expected(), 15, interval=0.05,
                   what="the write after the bootstrap")
        assert metric(worker.url, "sie_worker_snapshot_hash_mismatches_total") == 0
        assert metric(worker.url, "sie_worker_bootstrap_failures_total") == 0
        # the write came by a catch-up read that found no endpoint, then the full fallback
        assert older.hidden_deltas >= 1
        assert metric(worker.url, "sie_worker_snapshots_total", path="catchup") == 0
        assert metric(worker.url, "sie_worker_snapshots_total", path="full") >= 2
    finally:
        older.close()

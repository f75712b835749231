"""Helpers for the sie-worker integration tests: HTTP probes, metrics scraping, and a NATS proxy
that can cut a worker off NATS or silently swallow its deltas while sie-config stays connected.

Why a proxy: sie-config refuses writes while *its* NATS link is down, so killing nats-server
cannot make a worker miss a delta; and a SIGSTOPped worker misses nothing either (the server's
bytes wait in the socket buffer). A proxy between the worker and a real nats-server makes both
faults exact: ``cut()`` drops the worker's connection (and refuses new ones) until
``restore()``; ``drop_subject`` discards whole ``MSG`` frames of one subject without breaking
the connection, which is a lost delta with no reconnect at all.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import yaml

from sie_actors.http.metrics_text import sample_sum
from sie_actors.procs import LOOPBACK, free_port, wait_until
from sie_tools.admin.commands import YAML_TYPE
from sie_tools.admin.http import Endpoint
from sie_tools.admin.poller import fetch_status
from sie_tools.admin.readiness import all_acked
from tests.conftest import base_env

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"


def model_yaml(model_id: str, profile: str = "default", adapter: str = ST) -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {
        profile: {"adapter_path": adapter, "max_batch_tokens": 256}}}).encode()


def post_model(config_url: str, body: bytes, token: str | None = None,
               **headers: str) -> httpx.Response:
    """POST a model with the admin CLI's client (`sie models add`'s request); the answer,
    whatever its status. The one write helper of the integration tests."""
    with Endpoint("sie-config", config_url, token, 30.0) as config:
        return config.send("POST", "/v1/configs/models", content=body,
                           headers={"Content-Type": YAML_TYPE, **headers})


def post_until_accepted(config_url: str, body: bytes, timeout: float = 20.0,
                        **headers: str) -> httpx.Response:
    """POST, retrying while sie-config answers 503 (its NATS link is (re)connecting)."""
    def attempt():
        r = post_model(config_url, body, **headers)
        return r if r.status_code != 503 else None
    return wait_until(attempt, timeout, interval=0.05, what="a write accepted")


def acked_everywhere(gateway_urls: list[str], model_id: str, token: str | None = None) -> bool:
    """`sie models status`'s verdict: every gateway replica reports the model all-acked."""
    reports = []
    for url in gateway_urls:
        with Endpoint("gateway", url, token, 5.0) as gateway:
            reports.append(fetch_status(gateway, model_id, 5.0))
    return all_acked(reports)


def config_epoch(config_url: str, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(config_url + "/v1/configs/epoch", headers=headers, timeout=5)
    r.raise_for_status()
    return r.json()


def worker_status(worker_url: str) -> dict[str, Any]:
    r = httpx.get(worker_url + "/v1/worker/status", timeout=5)
    r.raise_for_status()
    return r.json()


def worker_hash(worker_url: str) -> str:
    return worker_status(worker_url)["bundle_config_hash"]


def metric(worker_url: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    return sample_sum(httpx.get(worker_url + "/metrics", timeout=5).text, name, **labels)


def worker_env(*, config_url: str | None = None, nats_url: str | None = None,
               **extra: str) -> dict[str, str]:
    env = base_env(**extra)
    env.pop("POD_NAME", None)  # base_env names sie-config; workers get --name
    env.setdefault("SIE_WORKER_HEARTBEAT_S", "0.5")
    env.setdefault("SIE_WORKER_BOOTSTRAP_BACKOFF_MAX_S", "0.5")
    if config_url:
        env["SIE_CONFIG_SERVICE_URL"] = config_url
    if nats_url:
        env["SIE_NATS_URL"] = nats_url
        env.setdefault("SIE_NATS_PING_INTERVAL_S", "1")
    return env


def spawn_worker(spawn, env: dict[str, str], name: str, bundle: str = "default",
                 port: int | None = None, ready_path: str = "/healthz"):
    return spawn("sie_worker", env, args=["--bundle", bundle, "--name", name],
                 port=port, ready_path=ready_path)


def wait_worker_hash(worker_url: str, expected: str, timeout: float, what: str) -> float:
    """Wait until the worker reports ``expected``; returns the seconds it took."""
    import time
    started = time.monotonic()
    wait_until(lambda: worker_hash(worker_url) == expected, timeout, interval=0.02, what=what)
    return time.monotonic() - started


def wait_nats_connected(worker_url: str, timeout: float = 15.0) -> None:
    wait_until(lambda: metric(worker_url, "sie_worker_nats_connected") == 1, timeout,
               what="worker connected to NATS")


class NatsProxy:
    """A TCP proxy to a nats-server with two faults: cut the connection, or drop one subject."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.drop_subject: str | None = None
        self.dropped = 0
        self._refusing = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopped = False
        self._listener = socket.create_server((LOOPBACK, self.port))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def cut(self) -> None:
        """Drop every proxied connection and refuse new ones until ``restore``."""
        with self._lock:
            self._refusing = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        self._stopped = True
        self.cut()
        self._listener.close()
        self._thread.join(timeout=2)

    # ---- plumbing -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _close(client)
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=2)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(upstream, client),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)

    def _server_to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        buf = b""
        try:
            while data := upstream.recv(65536):
                buf += data
                out: list[bytes] = []
                while (end := buf.find(b"\r\n")) >= 0:
                    line = buf[:end]
                    if line.startswith((b"MSG ", b"HMSG ")):
                        parts = line.split()
                        total = end + 2 + int(parts[-1]) + 2
                        if len(buf) < total:
                            break
                        frame, buf = buf[:total], buf[total:]
                        if self.drop_subject is not None and parts[1].decode() == self.drop_subject:
                            self.dropped += 1
                            continue
                        out.append(frame)
                    else:
                        out.append(buf[:end + 2])
                        buf = buf[end + 2:]
                if out:
                    client.sendall(b"".join(out))
        except OSError:
            pass
        finally:
            _close(upstream)
            _close(client)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass

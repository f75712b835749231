"""sie-worker's settings: command line and environment, parsed and checked once at start.

A bad value (an unknown bundle, a non-numeric interval) stops the worker before anything runs,
with a message naming the culprit, and a non-zero exit code.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sie_actors.domain.delta import parse_trusted_producers
from sie_actors.seed import default_dir
from sie_actors.settings import env_flag, env_float

# Characters that cannot appear in one NATS subject token (the original's worker refuses them).
_BAD_BUNDLE_CHARS = ("*", ">", " ", ".", "\t", "/")


def worker_name(cli_name: str | None, environ: Mapping[str, str]) -> str:
    """`--name`, else `POD_NAME`, else `HOSTNAME`, else the machine's host name."""
    return (cli_name or environ.get("POD_NAME") or environ.get("HOSTNAME")
            or socket.gethostname())


def check_bundle_name(bundle: str) -> str:
    if not bundle or any(ch in bundle for ch in _BAD_BUNDLE_CHARS):
        raise SystemExit(f"invalid bundle name {bundle!r}: it must be one NATS subject token "
                         "(no '.', '*', '>', '/' or spaces)")
    return bundle


def outbound_token(environ: Mapping[str, str]) -> str | None:
    """Bearer token for calls to sie-config: the read token if set, else the admin token.

    Only reads are made (bundle export, epoch), which the read token is enough for; an empty
    variable counts as unset (CONTRACT §2 item 15).
    """
    return environ.get("SIE_AUTH_TOKEN") or environ.get("SIE_ADMIN_TOKEN") or None


def advertise_url(explicit: str | None, host: str, port: int) -> str:
    """Where gateways should dial this worker; a wildcard bind advertises the host name."""
    if explicit:
        return explicit.rstrip("/")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = socket.gethostname()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class WorkerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    bundle: str = "default"
    name: str = "sie-worker"
    pool: str = ""
    bundles_dir: Path | None = None
    models_dir: Path | None = None
    nats_url: str | None = None
    config_url: str | None = None
    token: str | None = None
    trusted_producers: tuple[str, ...] = ("sie-config",)
    heartbeat_s: float = 1.0
    poll_s: float = 10.0
    announce_s: float = 5.0
    advertise_url: str | None = None
    nats_ping_interval: float = 2.0
    http_timeout_s: float = 5.0
    bootstrap_backoff_initial_s: float = 0.2
    bootstrap_backoff_max_s: float = 5.0
    preload: bool = False       # load the bundle's models as their configs arrive
    ack_wait_s: float = 5.0     # JetStream ack_wait; progress acks every ack_wait/5 keep it alive

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, host: str = "127.0.0.1",
                 port: int = 8080, bundle: str | None = None, name: str | None = None,
                 pool: str | None = None, **overrides) -> "WorkerSettings":
        env = os.environ if environ is None else environ
        config_url = (env.get("SIE_CONFIG_SERVICE_URL") or "").strip().rstrip("/") or None
        values = dict(
            host=host,
            port=port,
            bundle=check_bundle_name(bundle or env.get("SIE_BUNDLE") or "default"),
            name=worker_name(name, env),
            pool=pool if pool is not None else env.get("SIE_POOL", ""),
            bundles_dir=Path(env["SIE_BUNDLES_DIR"]) if env.get("SIE_BUNDLES_DIR")
            else default_dir("bundles"),
            models_dir=Path(env["SIE_MODELS_DIR"]) if env.get("SIE_MODELS_DIR")
            else default_dir("models"),
            nats_url=env.get("SIE_NATS_URL") or None,
            config_url=config_url,
            token=outbound_token(env),
            trusted_producers=parse_trusted_producers(
                env.get("SIE_NATS_CONFIG_TRUSTED_PRODUCERS")),
            heartbeat_s=env_float(env, "SIE_WORKER_HEARTBEAT_S", 1.0),
            poll_s=env_float(env, "SIE_WORKER_POLL_S", 10.0),
            announce_s=env_float(env, "SIE_WORKER_ANNOUNCE_S", 5.0),
            advertise_url=(env.get("SIE_WORKER_ADVERTISE_URL") or "").strip() or None,
            nats_ping_interval=env_float(env, "SIE_NATS_PING_INTERVAL_S", 2.0),
            http_timeout_s=env_float(env, "SIE_WORKER_HTTP_TIMEOUT_S", 5.0),
            bootstrap_backoff_max_s=env_float(env, "SIE_WORKER_BOOTSTRAP_BACKOFF_MAX_S", 5.0),
            preload=env_flag(env.get("SIE_WORKER_PRELOAD")),
            ack_wait_s=env_float(env, "SIE_WORKER_ACK_WAIT_S", 5.0),
        )
        values.update(overrides)
        initial = values.get("bootstrap_backoff_initial_s", cls.bootstrap_backoff_initial_s)
        values["bootstrap_backoff_initial_s"] = min(initial, values["bootstrap_backoff_max_s"])
        return cls(**values)

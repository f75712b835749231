"""sie-worker's settings: command line and environment, parsed and checked once at start.

Each environment setting is declared once below (variable, default, parser, doc line);
`docs/configuration.md` is generated from these declarations. A bad value (an unknown bundle, a
non-numeric interval) stops the worker before anything runs, with a message naming the culprit,
and a non-zero exit code.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sie_actors.seed import BUNDLES_DIR, MODELS_DIR
from sie_actors.settings import (NATS_PING_INTERVAL, SUPERVISOR_MAX_RESTARTS, SUPERVISOR_WINDOW,
                                 TRUSTED_PRODUCERS, flag, positive_float, read_settings,
                                 setting, url)

# Characters that cannot appear in one NATS subject token (the original's worker refuses them).
_BAD_BUNDLE_CHARS = ("*", ">", " ", ".", "\t", "/")


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


def graph_cache_dir(raw: str, name: str) -> Path | None:
    return None if raw.strip().lower() == "off" else Path(raw).expanduser()


def default_graph_cache(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sie-actors" / "graphs"


@dataclass(frozen=True)
class WorkerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    bundle: str = setting(
        "SIE_BUNDLE", "default",
        "bundle (`--bundle` wins); `{SIE_BUNDLES_DIR}/{bundle}.yaml` must exist")
    pool: str = setting("SIE_POOL", "", "`pool_name` in frames (`--pool` wins) and the "
                        "JetStream pool it consumes (`\"\"`: the bundle's name)")
    name: str = setting(
        ("POD_NAME", "HOSTNAME"), "sie-worker", "worker name when `--name` is not given",
        unset=lambda env: socket.gethostname(), shown="the machine's host name")
    config_url: str | None = setting(
        "SIE_CONFIG_SERVICE_URL", None, "sie-config; without it: seed only, no poll", url)
    nats_url: str | None = setting(
        "SIE_NATS_URL", None,
        "deltas on `sie.config.models.{bundle}`, sie-config's start on `sie.config.started`, "
        "announcements on `sie.workers.announce`")
    bundles_dir: Path | None = BUNDLES_DIR.field()
    models_dir: Path | None = MODELS_DIR.field()
    token: str | None = setting(
        ("SIE_AUTH_TOKEN", "SIE_ADMIN_TOKEN"), None,
        "outbound bearer to sie-config (the read token is preferred and enough)",
        from_environ=outbound_token, shown="unset")
    trusted_producers: tuple[str, ...] = TRUSTED_PRODUCERS.field()
    heartbeat_s: float = setting(
        "SIE_WORKER_HEARTBEAT_S", 1.0, "status frame interval on `/ws/status`", positive_float)
    poll_s: float = setting(
        "SIE_WORKER_POLL_S", 10.0, "epoch poll backstop", positive_float)
    announce_s: float = setting(
        "SIE_WORKER_ANNOUNCE_S", 5.0, "announcement interval on `sie.workers.announce`",
        positive_float)
    advertise_url: str | None = setting(
        "SIE_WORKER_ADVERTISE_URL", None, "URL announced to gateways",
        lambda raw, name: raw.strip(), shown="`http://{host}:{port}`")
    nats_ping_interval: float = NATS_PING_INTERVAL.field()
    http_timeout_s: float = setting(
        "SIE_WORKER_HTTP_TIMEOUT_S", 5.0, "timeout of calls to sie-config", positive_float)
    bootstrap_backoff_max_s: float = setting(
        "SIE_WORKER_BOOTSTRAP_BACKOFF_MAX_S", 5.0, "cap of the snapshot retry backoff",
        positive_float)
    supervisor_max_restarts: int = SUPERVISOR_MAX_RESTARTS.field()
    supervisor_window: float = SUPERVISOR_WINDOW.field()
    preload: bool = setting(
        "SIE_WORKER_PRELOAD", False, "load the bundle's models as their configs arrive "
        "(`sie-cluster up` sets `true`)", flag)
    ack_wait_s: float = setting(
        "SIE_WORKER_ACK_WAIT_S", 5.0, "JetStream `ack_wait`: a killed worker's items go to "
        "another worker after this (progress acks every fifth of it)", positive_float)
    fast_lane: bool = setting(
        "SIE_WORKER_FAST_LANE", True, "start a fetched batch on its model from the NATS loop's "
        "thread, past trio (`false`: every batch goes through trio; same results, a few tenths "
        "of a ms more per request)", flag)
    graph_cache: Path | None = setting(
        "SIE_WORKER_GRAPH_CACHE", None, "where built model graphs are kept, so a restarted "
        "worker loads a model without building its graph again (`off`: nowhere)",
        graph_cache_dir, unset=default_graph_cache,
        shown="`$XDG_CACHE_HOME/sie-actors/graphs` (`~/.cache/sie-actors/graphs`)")
    bootstrap_backoff_initial_s: float = 0.2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, host: str = "127.0.0.1",
                 port: int = 8080, bundle: str | None = None, name: str | None = None,
                 pool: str | None = None, **overrides) -> "WorkerSettings":
        """Flags (`bundle`, `name`, `pool`) win over the environment."""
        values = read_settings(cls, os.environ if environ is None else environ)
        values.update(host=host, port=port)
        values["bundle"] = check_bundle_name(bundle or values["bundle"])
        values["name"] = name or values["name"]
        if pool is not None:
            values["pool"] = pool
        values.update(overrides)
        initial = values.get("bootstrap_backoff_initial_s", cls.bootstrap_backoff_initial_s)
        values["bootstrap_backoff_initial_s"] = min(initial, values["bootstrap_backoff_max_s"])
        return cls(**values)

"""sie-config's settings: the seed's environment variables, parsed once at start.

Each one is declared once below (variable, default, parser, doc line); `docs/configuration.md`
is generated from these declarations. Tokens are read once (not per request as in the original):
a running service whose credentials change under it is a surprise, not a feature, and a restart
is how a deployment rotates secrets.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sie_actors.http.auth import TOKENS, Tokens
from sie_actors.seed import BUNDLES_DIR, MODELS_DIR
from sie_actors.settings import (NATS_PING_INTERVAL, SUPERVISOR_MAX_RESTARTS, SUPERVISOR_WINDOW,
                                 count, flag, positive_float, read_settings, setting)

from sie_config.delta_log import DEFAULT_MAX_BYTES, DEFAULT_MAX_EPOCHS


def producer_id(environ: Mapping[str, str]) -> str:
    """`POD_NAME`, else `sie-config-{hostname}-{pid}`: the `router_id` stamped on every delta.

    The original falls back to `{hostname}-{pid}`, which consumers then distrust (they accept only
    `sie-config` and `sie-config-*`); our fallback is trusted out of the box.
    """
    pod = environ.get("POD_NAME")
    if pod:
        return pod
    host = environ.get("HOSTNAME") or socket.gethostname()
    return f"sie-config-{host}-{os.getpid()}"


@dataclass(frozen=True)
class ConfigSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    store_url: str | None = setting(
        "SIE_CONFIG_STORE_DIR", None,
        "store location: a directory, `s3://bucket/prefix` or `gs://bucket/prefix` (see "
        "*Stores* below)", shown="unset: no store (memory only)")
    restore: bool = setting(
        "SIE_CONFIG_RESTORE", False,
        "`true` (also `1`, `yes`) replays the stored models into the registry at start. Epoch, "
        "generation and idempotency keys are always read from the store", flag)
    store_timeout: float = setting(
        "SIE_CONFIG_STORE_TIMEOUT_S", 10.0,
        "bound of each call to an object store; an unreachable store fails a write with 503 "
        "`store_unavailable` after this long", positive_float)
    nats_url: str | None = setting(
        "SIE_NATS_URL", None,
        "NATS server for deltas, and for `sie.config.started` on each connect once it serves. "
        "sie-config starts and serves reads while NATS is down; writes get 503 "
        "`nats_unavailable` until it is connected", shown="unset: standalone")
    nats_ping_interval: float = NATS_PING_INTERVAL.field()
    bundles_dir: Path | None = BUNDLES_DIR.field()
    models_dir: Path | None = MODELS_DIR.field()
    tokens: Tokens = TOKENS.field(doc=(
        "read (inference) token and admin token: writes and export need the admin token; once "
        "it is set, reads need a token too (either one); see [Tokens](#tokens)"))
    router_id: str = setting(
        "POD_NAME", "sie-config",
        "producer id (`router_id`) on deltas; gateways and workers trust `sie-config` and "
        "`sie-config-*`", from_environ=producer_id, shown="`sie-config-<host>-<pid>`")
    idempotency_ttl: float = setting(
        "SIE_IDEMPOTENCY_TTL_S", 24 * 3600.0,
        "how long a stored `Idempotency-Key` is honoured (expired records are pruned hourly)",
        positive_float)
    delta_log_epochs: int = setting(
        "SIE_CONFIG_DELTA_LOG_EPOCHS", DEFAULT_MAX_EPOCHS,
        "how many recent epochs' deltas sie-config keeps in memory for gateways and workers that "
        "missed some (`GET /v1/configs/deltas`: they catch up instead of fetching a full "
        "snapshot); `0` turns the catch-up off", count)
    delta_log_bytes: int = setting(
        "SIE_CONFIG_DELTA_LOG_BYTES", DEFAULT_MAX_BYTES,
        "bound of that log in bytes of deltas; the oldest epochs go first", count)
    supervisor_max_restarts: int = SUPERVISOR_MAX_RESTARTS.field()
    supervisor_window: float = SUPERVISOR_WINDOW.field()
    idempotency_memory: int = 1000
    nats_flush_timeout: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "ConfigSettings":
        values = read_settings(cls, os.environ if environ is None else environ)
        values.update(overrides)
        return cls(**values)

"""sie-config's settings: the seed's environment variables, parsed once at start.

Tokens are read once (not per request as in the original): a running service whose credentials
change under it is a surprise, not a feature, and a restart is how a deployment rotates secrets.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from sie_actors.http.auth import Tokens
from sie_actors.seed import default_dir
from sie_actors.settings import env_flag, env_float


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
    bundles_dir: Path | None = None
    models_dir: Path | None = None
    store_url: str | None = None
    restore: bool = False
    nats_url: str | None = None
    tokens: Tokens = field(default_factory=Tokens)
    router_id: str = "sie-config"
    idempotency_ttl: float = 24 * 3600.0
    idempotency_memory: int = 1000
    store_timeout: float = 10.0
    nats_ping_interval: float = 2.0
    nats_flush_timeout: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "ConfigSettings":
        env = os.environ if environ is None else environ
        values = dict(
            bundles_dir=Path(env["SIE_BUNDLES_DIR"]) if env.get("SIE_BUNDLES_DIR")
            else default_dir("bundles"),
            models_dir=Path(env["SIE_MODELS_DIR"]) if env.get("SIE_MODELS_DIR")
            else default_dir("models"),
            store_url=env.get("SIE_CONFIG_STORE_DIR") or None,
            restore=env_flag(env.get("SIE_CONFIG_RESTORE")),
            nats_url=env.get("SIE_NATS_URL") or None,
            tokens=Tokens.from_env(env),
            router_id=producer_id(env),
            idempotency_ttl=env_float(env, "SIE_IDEMPOTENCY_TTL_S", 24 * 3600.0),
            store_timeout=env_float(env, "SIE_CONFIG_STORE_TIMEOUT_S", 10.0),
            nats_ping_interval=env_float(env, "SIE_NATS_PING_INTERVAL_S", 2.0),
        )
        values.update(overrides)
        return cls(**values)

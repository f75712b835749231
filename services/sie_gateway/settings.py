"""sie-gateway's settings, from the environment (and `--worker` flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from sie_actors.domain.delta import parse_trusted_producers
from sie_actors.http.auth import Tokens
from sie_actors.settings import env_float, env_list, env_path


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    config_url: str | None = None
    nats_url: str | None = None
    workers: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()  # other gateways, shown with their epochs on the fleet page
    bundles_dir: Path | None = None  # optional filesystem seed
    models_dir: Path | None = None
    tokens: Tokens = field(default_factory=Tokens)
    trusted_producers: tuple[str, ...] = ("sie-config",)
    poll_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    announce_grace: float = 30.0
    bootstrap_timeout: float = 10.0
    nats_ping_interval: float = 2.0
    request_timeout: float = 30.0  # an encode's wait for its results, then 503 MODEL_LOADING
    name: str = "sie-gateway"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 workers: Sequence[str] = (), **overrides) -> "GatewaySettings":
        env = os.environ if environ is None else environ
        values = dict(
            config_url=(env.get("SIE_CONFIG_SERVICE_URL") or "").rstrip("/") or None,
            nats_url=env.get("SIE_NATS_URL") or None,
            workers=tuple(dict.fromkeys(
                [w.rstrip("/") for w in env_list(env.get("SIE_GATEWAY_WORKERS"))]
                + [w.rstrip("/") for w in workers])),
            peers=tuple(dict.fromkeys(w.rstrip("/") for w in env_list(
                env.get("SIE_GATEWAY_PEERS") or env.get("SIE_GATEWAY_URLS")))),
            bundles_dir=env_path(env, "SIE_BUNDLES_DIR"),
            models_dir=env_path(env, "SIE_MODELS_DIR"),
            tokens=Tokens.from_env(env),
            trusted_producers=parse_trusted_producers(
                env.get("SIE_NATS_CONFIG_TRUSTED_PRODUCERS")),
            poll_interval=env_float(env, "SIE_GATEWAY_POLL_INTERVAL_S", 5.0),
            heartbeat_timeout=env_float(env, "SIE_GATEWAY_HEARTBEAT_TIMEOUT_S", 15.0),
            announce_grace=env_float(env, "SIE_GATEWAY_WORKER_GRACE_S", 30.0),
            nats_ping_interval=env_float(env, "SIE_NATS_PING_INTERVAL_S", 2.0),
            request_timeout=env_float(env, "SIE_GATEWAY_REQUEST_TIMEOUT_S", 30.0),
            name=env.get("POD_NAME") or env.get("HOSTNAME") or "sie-gateway",
        )
        values.update(overrides)
        return cls(**values)

    @property
    def has_seed(self) -> bool:
        return self.bundles_dir is not None or self.models_dir is not None

    @property
    def outbound_token(self) -> str | None:
        """The bearer for sie-config: admin (export needs it), else the read token."""
        return self.tokens.admin or self.tokens.read

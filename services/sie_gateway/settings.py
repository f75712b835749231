"""sie-gateway's settings, from the environment (and `--worker` flags).

Each one is declared once below (variable, default, parser, doc line); `docs/configuration.md`
is generated from these declarations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from sie_actors.http.auth import TOKENS, Tokens
from sie_actors.settings import (NATS_PING_INTERVAL, SUPERVISOR_MAX_RESTARTS, SUPERVISOR_WINDOW,
                                 TRUSTED_PRODUCERS, path, port_number, positive_float,
                                 read_settings, setting, url, url_list)


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    config_url: str | None = setting(
        "SIE_CONFIG_SERVICE_URL", None,
        "sie-config base URL; unset: filesystem seed and NATS deltas only", url)
    nats_url: str | None = setting(
        "SIE_NATS_URL", None,
        "NATS for deltas (`sie.config.models._all`), sie-config's start "
        "(`sie.config.started`) and worker announcements (`sie.workers.announce`)")
    workers: tuple[str, ...] = setting(
        "SIE_GATEWAY_WORKERS", (), "comma-separated worker base URLs (added to `--worker`)",
        url_list, shown="unset")
    bundles_dir: Path | None = setting(
        "SIE_BUNDLES_DIR", None, "optional filesystem seed (bundles), served until the first "
        "bootstrap", path)
    models_dir: Path | None = setting(
        "SIE_MODELS_DIR", None, "optional filesystem seed (models), served until the first "
        "bootstrap", path)
    tokens: Tokens = TOKENS.field(doc=(
        "inbound auth as on sie-config; outbound bearer to sie-config is the admin token "
        "(export needs it), else the read token"))
    trusted_producers: tuple[str, ...] = TRUSTED_PRODUCERS.field()
    poll_interval: float = setting(
        "SIE_GATEWAY_POLL_INTERVAL_S", 5.0,
        "epoch poll backstop (also polled at once after every NATS reconnect)", positive_float)
    heartbeat_timeout: float = setting(
        "SIE_GATEWAY_HEARTBEAT_TIMEOUT_S", 15.0, "a worker silent this long is not eligible",
        positive_float)
    announce_grace: float = setting(
        "SIE_GATEWAY_WORKER_GRACE_S", 30.0,
        "an announced worker that stops announcing and is unhealthy is forgotten after this",
        positive_float)
    peers: tuple[str, ...] = setting(  # other gateways, shown with their epochs on the fleet page
        ("SIE_GATEWAY_PEERS", "SIE_GATEWAY_URLS"), (),
        "comma-separated base URLs of the other gateways; the fleet page shows each one's "
        "epoch (read by this gateway every `SIE_GATEWAY_POLL_INTERVAL_S`)", url_list,
        shown="unset")
    nats_ping_interval: float = NATS_PING_INTERVAL.field()
    name: str = setting(("POD_NAME", "HOSTNAME"), "sie-gateway", "NATS client name")
    supervisor_max_restarts: int = SUPERVISOR_MAX_RESTARTS.field()
    supervisor_window: float = SUPERVISOR_WINDOW.field()
    request_timeout: float = setting(
        "SIE_GATEWAY_REQUEST_TIMEOUT_S", 30.0,
        "how long an encode waits for its results before 503 `MODEL_LOADING`", positive_float)
    inference_port: int | None = setting(
        "SIE_GATEWAY_INFERENCE_PORT", None, "also serve `POST /v1/encode/...` (only that) on "
        "this port, on the gateway's host, through a lean HTTP/1.1 listener: a one-item encode "
        "answers a few tenths of a ms sooner than on the main port (docs/inference.md)",
        port_number, shown="unset (off)")
    bootstrap_timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 workers: Sequence[str] = (), **overrides) -> "GatewaySettings":
        values = read_settings(cls, os.environ if environ is None else environ)
        values["workers"] = tuple(dict.fromkeys(
            [*values["workers"], *(w.rstrip("/") for w in workers)]))
        values.update(overrides)
        return cls(**values)

    @property
    def has_seed(self) -> bool:
        return self.bundles_dir is not None or self.models_dir is not None

    @property
    def outbound_token(self) -> str | None:
        """The bearer for sie-config: admin (export needs it), else the read token."""
        return self.tokens.admin or self.tokens.read

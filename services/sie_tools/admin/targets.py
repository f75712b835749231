"""Where the CLI sends requests and with which token, from flags first and the environment second.

Token roles mirror the services' rules: writes and export need the admin token; reads accept the
read token or the admin token, so an operator holding only the admin token can still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from sie_tools.admin import exits
from sie_tools.admin.errors import CliError
from sie_tools.admin.http import Endpoint

DEFAULT_CONFIG_URL = "http://127.0.0.1:8080"
CONFIG_LABEL = "sie-config"
GATEWAY_LABEL = "gateway"
WRITE_HINT = "pass --token or set SIE_ADMIN_TOKEN"
READ_HINT = "set SIE_AUTH_TOKEN, or pass --token / set SIE_ADMIN_TOKEN"


def split_urls(value: str | None) -> list[str]:
    """`SIE_GATEWAY_URLS=a,b` → `[a, b]`; blanks and surrounding spaces are ignored."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@dataclass(frozen=True)
class Targets:
    config_url: str
    gateway_urls: list[str] = field(default_factory=list)
    admin_token: str | None = None
    read_token: str | None = None
    request_timeout: float = 10.0

    @classmethod
    def resolve(cls, *, config_url: str | None, gateway_urls: list[str] | None,
                token: str | None, request_timeout: float,
                environ: Mapping[str, str]) -> Targets:
        """Flags win over the environment; empty values count as unset (as on the services)."""
        admin = token or environ.get("SIE_ADMIN_TOKEN") or None
        gateways = [u for raw in (gateway_urls or []) for u in split_urls(raw)]
        return cls(
            config_url=config_url or environ.get("SIE_CONFIG_URL") or DEFAULT_CONFIG_URL,
            gateway_urls=gateways or split_urls(environ.get("SIE_GATEWAY_URLS")),
            admin_token=admin,
            read_token=environ.get("SIE_AUTH_TOKEN") or admin,
            request_timeout=request_timeout,
        )

    def config(self, *, write: bool = False) -> Endpoint:
        token = self.admin_token if write else self.read_token
        return Endpoint(CONFIG_LABEL, self.config_url, token, self.request_timeout,
                        auth_hint=WRITE_HINT if write else READ_HINT)

    def gateway(self, url: str) -> Endpoint:
        return Endpoint(GATEWAY_LABEL, url, self.read_token, self.request_timeout,
                        auth_hint=READ_HINT)

    def require_gateways(self) -> None:
        """Readiness is per replica, so there is no useful default gateway to fall back to."""
        if not self.gateway_urls:
            raise CliError(exits.USAGE, "no gateway configured: pass --gateway-url URL "
                                        "(repeatable) or set SIE_GATEWAY_URLS=url1,url2")

    def gateways(self) -> list[Endpoint]:
        """Every replica, in the configured order."""
        self.require_gateways()
        return [self.gateway(url) for url in self.gateway_urls]

    def reader(self, source: str) -> Endpoint:
        """`auto`: the first gateway if any (what clients see), else sie-config."""
        if source == "gateway" or (source == "auto" and self.gateway_urls):
            if not self.gateway_urls:
                raise CliError(exits.USAGE, "--from gateway needs --gateway-url or "
                                            "SIE_GATEWAY_URLS")
            return self.gateway(self.gateway_urls[0])
        return self.config()

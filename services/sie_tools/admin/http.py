"""One HTTP endpoint (sie-config or a gateway replica) as the CLI sees it.

The point of this wrapper is that every transport failure and every non-2xx answer leaves here as
a `CliError` naming the service and its URL, so commands only handle the success path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from sie_tools.admin import exits
from sie_tools.admin.errors import CliError, http_error, unreachable


def model_path(model_id: str, suffix: str = "") -> str:
    """`/v1/configs/models/{id}{suffix}`; `/` stays literal because ids like `BAAI/bge-m3` are
    routed as a path, everything else unusual is percent-encoded."""
    return f"/v1/configs/models/{quote(model_id, safe='/')}{suffix}"


def describe_transport_error(exc: httpx.TransportError, timeout: float | None = None) -> str:
    """A short reason for a failure that produced no HTTP answer at all."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g}s" if timeout else "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Endpoint:
    """A base URL, a label for messages, a bearer token and a request timeout."""

    def __init__(self, label: str, base_url: str, token: str | None, timeout: float,
                 transport: httpx.BaseTransport | None = None, auth_hint: str = "") -> None:
        self.label = label
        self.auth_hint = auth_hint if not token else ""
        self.url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, method: str, path: str, *, timeout: float | None = None,
             **kwargs: Any) -> httpx.Response:
        """The response whatever its status; only a missing answer raises (exit 3)."""
        limit = self.timeout if timeout is None else timeout
        try:
            return self._client.request(method, path, timeout=limit, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.label, self.url, describe_transport_error(exc, limit)) from None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A 2xx response, else a `CliError` with the service's own error message."""
        response = self.send(method, path, **kwargs)
        if not response.is_success:
            error = http_error(self.label, response.status_code, response.content,
                               response.reason_phrase)
            if response.status_code == 401 and self.auth_hint:  # we sent no token at all
                error.message += f" ({self.auth_hint})"
            raise error
        return response

    def json(self, response: httpx.Response) -> Any:
        """The decoded body of a 2xx answer; a non-JSON body (a proxy's page) is a server fault."""
        try:
            return response.json()
        except ValueError:
            raise CliError(exits.SERVER_ERROR, f"{self.label} at {self.url} answered "
                                               f"{response.request.method} {response.request.url.path} "
                                               "with a body that is not JSON") from None

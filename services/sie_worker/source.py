"""The worker's two reads from sie-config, over httpx (which runs under trio).

* ``GET /v1/configs/bundles/{bundle}/export``: the bundle-scoped snapshot (read token);
* ``GET /v1/configs/epoch``: the drift check.

Every failure becomes a :class:`FetchError` with a short ``reason`` for metrics; callers decide
whether to retry. Nothing here retries or sleeps.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from sie_actors.domain.errors import DomainError

from sie_actors.domain.sync import EpochReport

from sie_worker.sync import BundleSnapshot, parse_bundle_snapshot


class FetchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ConfigSource:
    def __init__(self, client: httpx.AsyncClient, base_url: str, bundle: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.bundle = bundle
        self.export_url = f"{self.base_url}/v1/configs/bundles/{quote(bundle, safe='')}/export"
        self.epoch_url = f"{self.base_url}/v1/configs/epoch"

    async def fetch_snapshot(self) -> BundleSnapshot:
        body = await self._get(self.export_url)
        try:
            return parse_bundle_snapshot(body, self.bundle)
        except DomainError as exc:
            raise FetchError("invalid", f"bundle snapshot: {exc.message}") from None

    async def fetch_epoch(self) -> EpochReport:
        body = await self._get(self.epoch_url)
        try:
            return EpochReport.parse(body)
        except DomainError as exc:
            raise FetchError("invalid", f"epoch: {exc.message}") from None

    async def _get(self, url: str) -> bytes:
        try:
            response = await self.client.get(url)
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", f"GET {url}: timed out ({exc!r})") from None
        except httpx.HTTPError as exc:
            raise FetchError("unreachable", f"GET {url}: {exc!r}") from None
        status = response.status_code
        if status == 200:
            return response.content
        detail = response.text[:300]
        if status in (401, 403):
            reason = "auth"
        elif status == 404:
            reason = "not_found"
        else:
            reason = f"http_{status // 100}xx"
        raise FetchError(reason, f"GET {url}: HTTP {status}: {detail}")

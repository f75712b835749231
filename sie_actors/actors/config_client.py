"""The one client a mirror uses to read sie-config, and the two snapshot sources built on it.

* :class:`ConfigClient`: one httpx client, one error type (:class:`ConfigReadError`, with a short
  ``reason`` for metrics). It reads ``/v1/configs/epoch`` and raw bodies; nothing here retries or
  sleeps: pacing is the mirror protocol's.
* :class:`FullExportSource` (gateways): the original gateway's reads (bundle list, each bundle's
  YAML, the export), so our gateway also works against the original sie-config.
* :class:`BundleExportSource` (workers): ``/v1/configs/bundles/{bundle}/export``.

Building a registry of many models takes a noticeable fraction of a second, so both build it in
a worker thread (the domain is pure) while the event loop keeps serving.
"""

from __future__ import annotations

from typing import Protocol, Sequence
from urllib.parse import quote

import httpx
import trio

from sie_actors.domain.bundle import Bundle, parse_bundle_yaml
from sie_actors.domain.errors import DomainError
from sie_actors.domain.jsonbytes import load_object
from sie_actors.domain.mirror_protocol import MirrorSnapshot
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import (parse_bundle_snapshot, parse_export,
                                        registry_from_bundle_snapshot)
from sie_actors.domain.sync import EpochReport
from sie_actors.gcpause import gc_paused
from sie_actors.http.auth import auth_headers


class ConfigReadError(Exception):
    """sie-config could not be read or answered something we cannot use."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _reason(status: int) -> str:
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    return f"http_{status // 100}xx"


class ConfigClient:
    """Reads from sie-config with the service's outbound token; use as an async context."""

    def __init__(self, base_url: str, token: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=auth_headers(token),
            timeout=httpx.Timeout(timeout, connect=min(2.0, timeout)))

    async def __aenter__(self) -> "ConfigClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._client.aclose()

    async def get(self, path: str) -> bytes:
        try:
            response = await self._client.get(path)
        except httpx.TimeoutException as exc:
            raise ConfigReadError("timeout", f"GET {path}: timed out ({exc!r})") from None
        except httpx.HTTPError as exc:
            raise ConfigReadError("unreachable", f"GET {self.base_url}{path}: {exc!r}") from None
        if response.status_code != 200:
            raise ConfigReadError(_reason(response.status_code),
                                  f"GET {path}: HTTP {response.status_code}: "
                                  f"{response.text[:300]}")
        return response.content

    async def epoch(self) -> EpochReport:
        body = await self.get("/v1/configs/epoch")
        try:
            return EpochReport.parse(body)
        except DomainError as exc:
            raise ConfigReadError("invalid", f"epoch: {exc.message}") from None


class SnapshotSource(Protocol):
    async def fetch(self) -> MirrorSnapshot:
        """A snapshot of sie-config, or :class:`ConfigReadError`."""


class FullExportSource:
    """Every bundle and model: what a gateway mirrors."""

    def __init__(self, client: ConfigClient) -> None:
        self.client = client

    async def fetch(self) -> MirrorSnapshot:
        listing = _json_object(await self.client.get("/v1/configs/bundles"), "bundles")
        bundles: list[Bundle] = []
        items = listing.get("bundles", [])
        for item in items if isinstance(items, list) else []:
            bundle_id = item.get("bundle_id") if isinstance(item, dict) else None
            if not isinstance(bundle_id, str) or not bundle_id:
                continue
            text = await self.client.get(f"/v1/configs/bundles/{quote(bundle_id, safe='')}")
            try:
                bundles.append(parse_bundle_yaml(text.decode("utf-8", "replace"), bundle_id))
            except DomainError as exc:
                raise ConfigReadError("invalid", f"bundle {bundle_id}: {exc.message}") from None
        body = await self.client.get("/v1/configs/export")
        return await trio.to_thread.run_sync(_build_full, tuple(bundles), body)


def _build_full(bundles: tuple[Bundle, ...], body: bytes) -> MirrorSnapshot:
    with gc_paused():  # bulk allocation: the collector would walk the heap for nothing
        try:
            export = parse_export(body)
        except DomainError as exc:
            raise ConfigReadError("invalid", f"export: {exc.message}") from None
        registry = Registry.build(bundles, export.model_configs)
    issues = tuple((issue.model_id or "?", issue.message) for issue in registry.load_issues)
    return MirrorSnapshot(registry, export.epoch, export.generation, "",
                          export.skipped + issues)


class BundleExportSource:
    """One bundle's models: what a worker mirrors. ``local_bundles`` are the worker's own bundle
    definitions, kept so that a model spanning bundles validates as it did on sie-config."""

    def __init__(self, client: ConfigClient, bundle: str, local_bundles: Sequence[Bundle]) -> None:
        self.client = client
        self.bundle = bundle
        self.local_bundles = tuple(local_bundles)
        self.path = f"/v1/configs/bundles/{quote(bundle, safe='')}/export"

    async def fetch(self) -> MirrorSnapshot:
        body = await self.client.get(self.path)
        return await trio.to_thread.run_sync(self._build, body)

    def _build(self, body: bytes) -> MirrorSnapshot:
        try:
            snapshot = parse_bundle_snapshot(body, self.bundle)
            registry = registry_from_bundle_snapshot(snapshot, self.local_bundles)
        except DomainError as exc:
            raise ConfigReadError("invalid", f"bundle snapshot: {exc.message}") from None
        return MirrorSnapshot(registry, snapshot.epoch, snapshot.generation,
                              snapshot.bundle_config_hash, snapshot.skipped)


def _json_object(body: bytes, what: str) -> dict:
    try:
        return load_object(body, what)
    except DomainError as exc:
        raise ConfigReadError("invalid", f"{what}: {exc.message}") from None

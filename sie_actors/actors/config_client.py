"""The one client a mirror uses to read sie-config, and the two snapshot sources built on it.

* :class:`ConfigClient`: one httpx client, one error type (:class:`ConfigReadError`, with a short
  ``reason`` for metrics). It reads ``/v1/configs/epoch`` and raw bodies; nothing here retries or
  sleeps: pacing is the mirror protocol's.
* :class:`FullExportSource` (gateways): the original gateway's reads (bundle list, each bundle's
  YAML, the export), so our gateway also works against the original sie-config.
* :class:`BundleExportSource` (workers): ``/v1/configs/bundles/{bundle}/export``; against a
  sie-config that has no such endpoint (the original's, or ours before it existed: a mixed fleet
  during a rolling upgrade) it falls back to what that service does serve, with the token the
  worker has (:class:`OlderServiceSource`).

Both are the fallback of :class:`~sie_actors.actors.catchup_source.CatchUpSource`, which a mirror
that already holds a snapshot asks first (the deltas since its epoch).

Building a registry of many models takes a noticeable fraction of a second, so both build it in
a worker thread (the domain is pure) while the event loop keeps serving.
"""

from __future__ import annotations

import logging
from typing import Protocol, Sequence
from urllib.parse import quote

import httpx
import trio

from sie_actors.domain.bundle import Bundle, parse_bundle_yaml
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import parse_stored_model_yaml
from sie_actors.domain.jsonbytes import load_object
from sie_actors.domain.mirror_protocol import MirrorSnapshot, MirrorView
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import (parse_bundle_snapshot, parse_export,
                                        registry_from_bundle_snapshot)
from sie_actors.domain.sync import EpochReport
from sie_actors.gcpause import gc_paused
from sie_actors.http.auth import auth_headers


log = logging.getLogger("sie_actors.config_client")


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


def endpoint_missing(reason: str, message: str) -> bool:
    """A failed read (``reason``, ``message`` of a `ConfigReadError`) that means the endpoint
    itself is missing (an older sie-config: a mixed fleet): a 404 that is not our sie-config's
    `bundle_not_found` for an unknown bundle."""
    return reason == "not_found" and "bundle_not_found" not in message


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
    async def fetch(self, current: MirrorView | None = None) -> MirrorSnapshot:
        """A snapshot of sie-config, or :class:`ConfigReadError`. ``current``: where the mirror
        stands (a catch-up source applies sie-config's recent deltas to it; the full sources
        here ignore it)."""


class FullExportSource:
    """Every bundle and model: what a gateway mirrors."""

    def __init__(self, client: ConfigClient) -> None:
        self.client = client

    async def fetch(self, current: MirrorView | None = None) -> MirrorSnapshot:
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

        self.older = OlderServiceSource(client, bundle)
        self._warned = False

    async def fetch(self, current: MirrorView | None = None) -> MirrorSnapshot:
        try:
            body = await self.client.get(self.path)
        except ConfigReadError as exc:
            # Asked again on every fetch, so a worker uses the bundle export as soon as
            # sie-config is upgraded.
            if not endpoint_missing(exc.reason, exc.message):
                raise
            if not self._warned:
                self._warned = True
                log.warning("sie-config has no %s (an older sie-config): reading the snapshot "
                            "the way it serves it", self.path)
            return await self.older.fetch()
        return await trio.to_thread.run_sync(self._build, body)

    def _build(self, body: bytes) -> MirrorSnapshot:
        try:
            snapshot = parse_bundle_snapshot(body, self.bundle)
            registry = registry_from_bundle_snapshot(snapshot, self.local_bundles)
        except DomainError as exc:
            raise ConfigReadError("invalid", f"bundle snapshot: {exc.message}") from None
        return MirrorSnapshot(registry, snapshot.epoch, snapshot.generation,
                              snapshot.bundle_config_hash, snapshot.skipped)


class OlderServiceSource:
    """One bundle's snapshot from a sie-config without the bundle export.

    With the admin token: the full export, cut down to the bundle. With the read token only
    (the export refuses it): the epoch, the bundle's YAML, the model list and each model's YAML,
    all read-token endpoints; the epoch is read before and after, and a snapshot during which it
    moved is refused (the mirror fetches again), so the models and the epoch always agree.
    """

    def __init__(self, client: ConfigClient, bundle: str) -> None:
        self.client = client
        self.bundle = bundle

    async def fetch(self, current: MirrorView | None = None) -> MirrorSnapshot:
        try:
            full = await FullExportSource(self.client).fetch()
        except ConfigReadError as exc:
            if exc.reason != "auth":
                raise
            return await self._from_reads()
        return MirrorSnapshot(full.registry.filter_to_bundle(self.bundle), full.epoch,
                              full.generation, "", full.skipped)

    async def _from_reads(self) -> MirrorSnapshot:
        before = await self.client.epoch()
        bundle_text = await self.client.get(f"/v1/configs/bundles/{quote(self.bundle, safe='')}")
        listing = _json_object(await self.client.get("/v1/configs/models"), "models")
        items = listing.get("models", [])
        texts: list[bytes] = []
        for item in items if isinstance(items, list) else []:
            model_id = item.get("model_id") if isinstance(item, dict) else None
            if isinstance(model_id, str) and model_id:
                texts.append(await self.client.get(f"/v1/configs/models/{quote(model_id)}"))
        after = await self.client.epoch()
        if (after.epoch, after.generation) != (before.epoch, before.generation):
            raise ConfigReadError("moving", f"sie-config moved from epoch {before.epoch} to "
                                            f"{after.epoch} while its models were read")
        return await trio.to_thread.run_sync(self._build, bundle_text, tuple(texts), before)

    def _build(self, bundle_text: bytes, texts: tuple[bytes, ...],
               report: EpochReport) -> MirrorSnapshot:
        try:
            bundle = parse_bundle_yaml(bundle_text.decode("utf-8", "replace"), self.bundle)
        except DomainError as exc:
            raise ConfigReadError("invalid", f"bundle {self.bundle}: {exc.message}") from None
        configs, skipped = [], []
        for index, text in enumerate(texts):
            try:
                configs.append(parse_stored_model_yaml(text))
            except DomainError as exc:
                skipped.append((f"#{index}", exc.message))
        with gc_paused():
            registry = Registry.build((bundle,), configs).filter_to_bundle(self.bundle)
        # other bundles' models are "unrouteable" here by construction: not worth a warning
        issues = tuple((i.model_id or "?", i.message) for i in registry.load_issues
                       if i.kind == "skipped")
        return MirrorSnapshot(registry, report.epoch, report.generation,
                              report.bundle_config_hashes.get(self.bundle, ""),
                              tuple(skipped) + issues)


def _json_object(body: bytes, what: str) -> dict:
    try:
        return load_object(body, what)
    except DomainError as exc:
        raise ConfigReadError("invalid", f"{what}: {exc.message}") from None

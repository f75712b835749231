"""Fetching a full snapshot from sie-config: the gateway's bootstrap and resync.

The protocol is the original gateway's (epoch, bundle list, each bundle's YAML, export), so our
gateway works against the original sie-config too. The registry is rebuilt from the snapshot
alone: after a resync the mirror equals sie-config exactly, with nothing left over from a state
we no longer trust. Parsing and hashing 10,000 models takes a noticeable fraction of a second, so
it runs in a worker thread (the domain is pure, so this is safe) and the event loop keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import httpx
import trio

from sie_actors.domain.bundle import Bundle, parse_bundle_yaml
from sie_actors.domain.errors import DomainError
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import parse_export
from sie_actors.gcpause import gc_paused
from sie_actors.http.auth import auth_headers


class BootstrapFailed(Exception):
    """sie-config could not be read or gave something we cannot use; the mirror keeps its state."""


@dataclass(frozen=True)
class Snapshot:
    registry: Registry
    epoch: int
    generation: str
    remote_bundles_hash: str
    skipped: tuple[tuple[str, str], ...]


def _json(response: httpx.Response, what: str):
    if response.status_code != 200:
        raise BootstrapFailed(f"{what}: HTTP {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError as exc:
        raise BootstrapFailed(f"{what}: invalid JSON") from exc


async def fetch_snapshot(base_url: str, token: str | None, timeout: float) -> Snapshot:
    try:
        async with httpx.AsyncClient(base_url=base_url, headers=auth_headers(token),
                                     timeout=timeout) as client:
            epoch_body = _json(await client.get("/v1/configs/epoch"), "epoch")
            listing = _json(await client.get("/v1/configs/bundles"), "bundles")
            bundles: list[Bundle] = []
            for item in listing.get("bundles", []) if isinstance(listing, dict) else []:
                bundle_id = item.get("bundle_id") if isinstance(item, dict) else None
                if not isinstance(bundle_id, str) or not bundle_id:
                    continue
                response = await client.get(f"/v1/configs/bundles/{quote(bundle_id, safe='')}")
                if response.status_code != 200:
                    raise BootstrapFailed(f"bundle {bundle_id}: HTTP {response.status_code}")
                bundles.append(parse_bundle_yaml(response.text, bundle_id))
            export = await client.get("/v1/configs/export")
            if export.status_code != 200:
                raise BootstrapFailed(f"export: HTTP {export.status_code}: {export.text[:200]}")
            body = export.content
    except httpx.HTTPError as exc:
        raise BootstrapFailed(f"cannot reach sie-config at {base_url}: {exc!r}") from exc
    except DomainError as exc:
        raise BootstrapFailed(f"malformed bundle from sie-config: {exc.message}") from exc
    return await trio.to_thread.run_sync(
        _build, tuple(bundles), body, str(epoch_body.get("bundles_hash") or ""))


def _build(bundles: tuple[Bundle, ...], export_body: bytes, bundles_hash: str) -> Snapshot:
    with gc_paused():  # bulk allocation: the collector would walk the heap for nothing
        try:
            export = parse_export(export_body)
        except DomainError as exc:
            raise BootstrapFailed(f"malformed export: {exc.message}") from exc
        registry = Registry.build(bundles, export.model_configs)
    issues = tuple((issue.model_id or "?", issue.message) for issue in registry.load_issues)
    return Snapshot(registry, export.epoch, export.generation, bundles_hash,
                    export.skipped + issues)

"""Read views and the export snapshot: what sie-config serves and gateways/workers consume.

Only formatting and parsing; the clock, the epoch and the transport are the callers'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import orjson
import yaml

from .bundle import Bundle, bundle_from_mapping
from .errors import DomainError, ParseError
from .jsonbytes import load_object
from .model_config import parse_stored_model_yaml
from .registry import ModelEntry, Registry

SNAPSHOT_VERSION = 1
SOURCE_GATEWAY = "gateway-registry"
SOURCE_FILESYSTEM = "filesystem"
SOURCE_API = "api"


# --------------------------------------------------------------------------- views


def model_summary(entry: ModelEntry, source: str) -> dict[str, Any]:
    """One item of ``GET /v1/configs/models``."""
    return {"model_id": entry.model_id, "profiles": entry.profile_names(), "source": source}


def bundle_summary(bundle: Bundle, source: str) -> dict[str, Any]:
    """One item of ``GET /v1/configs/bundles`` (the gateway adds ``connected_workers``)."""
    return {
        "bundle_id": bundle.name,
        "priority": bundle.priority,
        "adapter_count": len(bundle.adapters),
        "source": source,
    }


def bundle_yaml_view(bundle: Bundle, source: str = SOURCE_FILESYSTEM) -> str:
    """``GET /v1/configs/bundles/{id}`` body (§1.10): keys alphabetical, adapters in file order.

    ``parse_bundle_yaml`` reads it back, which is how gateways learn bundles.
    """
    return yaml.safe_dump(
        {
            "name": bundle.name,
            "priority": bundle.priority,
            "source": source,
            "adapters": list(bundle.adapters),
        }
    )


def model_stub_yaml(model_id: str, bundles: Iterable[str], source: str) -> str:
    """Minimal model view: the gateway's ``GET /v1/configs/models/{id}`` (and sie-config's
    fallback when it has no document), keys alphabetical."""
    return yaml.safe_dump({"sie_id": model_id, "source": source, "bundles": list(bundles)})


def gateway_model_yaml(entry: ModelEntry) -> str:
    """The gateway's model view: canonical id and routable bundles."""
    return model_stub_yaml(entry.model_id, entry.bundles, SOURCE_GATEWAY)


# --------------------------------------------------------------------------- export


def export_model_entry(entry: ModelEntry, raw_yaml: str | None = None) -> dict[str, Any]:
    """One ``models[]`` item of ``GET /v1/configs/export`` (§8.1).

    ``model_config`` is the whole document (CONTRACT §2 item 10); ``raw_yaml`` defaults to
    its canonical YAML, which is what a store holds for it.
    """
    return {
        "model_id": entry.model_id,
        "model_config": entry.config,
        "raw_yaml": entry.raw_yaml if raw_yaml is None else raw_yaml,
        "affected_bundles": list(entry.bundles),
    }


def build_export(
    models: Iterable[ModelEntry] | Registry,
    *,
    epoch: int,
    generated_at: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The export body; ``extra`` adds our keys (e.g. ``generation``) after the original's."""
    if isinstance(models, Registry):
        models = models.list_models()
    body: dict[str, Any] = {
        "snapshot_version": SNAPSHOT_VERSION,
        "epoch": epoch,
        "generated_at": generated_at,
        "models": [export_model_entry(entry) for entry in models],
    }
    if extra:
        body.update(extra)
    return body


@dataclass(frozen=True)
class ExportSnapshot:
    """A parsed export: the model documents to feed to the append path, in export order.

    ``skipped`` names entries that carried no usable document (with the reason); the
    consumer logs them. ``generation`` is ``""`` from an original sie-config.
    """

    epoch: int
    snapshot_version: int
    generation: str
    model_configs: tuple[dict[str, Any], ...]
    affected_bundles: Mapping[str, tuple[str, ...]]
    skipped: tuple[tuple[str, str], ...]


def _entry_config(item: Mapping[str, Any]) -> dict[str, Any]:
    """The document of one export item, as the original consumer reads it.

    ``model_config`` when it is a mapping with profiles, else ``raw_yaml`` parsed. A document
    without ``sie_id`` (a ``name:``-only baseline file) gets the item's id, so it passes the
    write-path rules on the consumer.
    """
    model_id = item.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise ParseError("export item without a string model_id")
    config = item.get("model_config")
    if not (isinstance(config, dict) and config.get("profiles")):
        raw = item.get("raw_yaml")
        parsed = None
        if isinstance(raw, str) and raw:
            try:  # the one parser of stored documents: same budget and plain-data rules
                parsed = parse_stored_model_yaml(raw)
            except DomainError:
                parsed = None
        if isinstance(parsed, dict) and parsed.get("profiles"):
            config = parsed
        elif not isinstance(config, dict):
            raise ParseError(f"export item '{model_id}' has no model document")
    if not config.get("sie_id"):
        config = {"sie_id": model_id, **config}
    return config


def parse_export(body: bytes | str | Mapping[str, Any]) -> ExportSnapshot:
    """Parse ``GET /v1/configs/export`` (JSON bytes/text, or an already-decoded object)."""
    body = load_object(body, "Export")
    epoch = body.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ParseError("Export 'epoch' must be a non-negative integer")
    version = body.get("snapshot_version", SNAPSHOT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ParseError("Export 'snapshot_version' must be an integer")
    generation = body.get("generation", "")
    if not isinstance(generation, str):
        raise ParseError("Export 'generation' must be a string")
    items = body.get("models", [])
    if not isinstance(items, list):
        raise ParseError("Export 'models' must be a list")
    configs: list[dict[str, Any]] = []
    bundles: dict[str, tuple[str, ...]] = {}
    skipped: list[tuple[str, str]] = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            skipped.append((f"#{position}", "export item is not an object"))
            continue
        try:
            config = _entry_config(item)
        except ParseError as exc:
            skipped.append((str(item.get("model_id", f"#{position}")), exc.message))
            continue
        configs.append(config)
        affected = item.get("affected_bundles")
        if isinstance(affected, list) and all(isinstance(b, str) for b in affected):
            bundles[item["model_id"]] = tuple(affected)
    return ExportSnapshot(epoch, version, generation, tuple(configs), bundles, tuple(skipped))


def export_json_bytes(body: Mapping[str, Any]) -> bytes:
    """Serialize an export body (the write path guarantees every document is JSON-able)."""
    return orjson.dumps(body)


# --------------------------------------------------------------------------- bundle export


@dataclass(frozen=True)
class BundleSnapshot:
    """sie-config's bundle-scoped export (``/v1/configs/bundles/{bundle}/export``), parsed."""

    epoch: int
    generation: str
    bundle: Bundle
    bundle_config_hash: str
    model_configs: tuple[dict[str, Any], ...]
    skipped: tuple[tuple[str, str], ...] = ()


def parse_bundle_snapshot(body: bytes | str | Mapping[str, Any], bundle: str) -> BundleSnapshot:
    """Parse and check the snapshot; ``ParseError`` if it is not one for ``bundle``."""
    obj = load_object(body, "bundle snapshot")
    export = parse_export(obj)
    raw_bundle = obj.get("bundle")
    if not isinstance(raw_bundle, Mapping):
        raise ParseError("bundle snapshot: 'bundle' must be an object")
    parsed = bundle_from_mapping(dict(raw_bundle), bundle)
    if parsed.name != bundle:
        raise ParseError(f"bundle snapshot is for bundle {parsed.name!r}, not {bundle!r}")
    expected = obj.get("bundle_config_hash", "")
    if not isinstance(expected, str):
        raise ParseError("bundle snapshot: 'bundle_config_hash' must be a string")
    return BundleSnapshot(export.epoch, export.generation, parsed, expected,
                          export.model_configs, export.skipped)


def registry_from_bundle_snapshot(snapshot: BundleSnapshot,
                                  local_bundles: Sequence[Bundle]) -> Registry:
    """A worker's registry after a (re)bootstrap: the snapshot's bundle and models only.

    sie-config is authoritative, so nothing of the seed's models survives. The other bundles
    known locally are kept so that a later delta for a model spanning several bundles validates
    here as it did on sie-config; they do not change this bundle's hash, whose fragments leave
    out profiles of other bundles' adapters.
    """
    bundles = [b for b in local_bundles if b.name != snapshot.bundle.name]
    bundles.append(snapshot.bundle)
    return Registry.build(bundles, snapshot.model_configs).filter_to_bundle(snapshot.bundle.name)

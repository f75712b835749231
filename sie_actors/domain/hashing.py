"""The two fingerprints every service must agree on, byte for byte with the original.

``bundles_hash`` (reference §4.2) fingerprints the bundle set; ``bundle_config_hash``
(§4.3) fingerprints what one bundle's workers must serve. The latter is assembled from
per-model byte fragments so a snapshot can cache them: the orjson text of the whole list
is exactly ``"[" + ",".join(fragments) + "]"`` because orjson output is compact, so a write
only serializes the model it touched.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping, Sequence

import orjson

from .errors import ValidationFailed
from .jsonbytes import dumps_kept
from .model_config import HASH_FIELDS


def bundles_hash(bundles: Iterable[Any]) -> str:
    """§4.2: sha256 of the stdlib-JSON canonical bundle list; ``""`` without bundles.

    Stdlib ``json`` (ASCII-escaping) on purpose: that is what the original used here, unlike
    the orjson of ``bundle_config_hash``.
    """
    canonical = [
        {"name": b.name, "priority": b.priority, "adapters": sorted(b.adapters)}
        for b in sorted(bundles, key=lambda b: b.name)
    ]
    if not canonical:
        return ""
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_adapter_options(value: Any) -> Any:
    """A mapping whose values are all Python-falsy hashes as ``null`` (§4.3 step 4)."""
    if isinstance(value, Mapping) and not any(value.values()):
        return None
    return value


def profile_config_bytes(profile_name: str, profile: Mapping[str, Any]) -> bytes:
    """orjson text of one profile's hashed ``config`` object (keys sorted at every depth).

    Raises ``ValidationFailed`` for values JSON cannot carry, so an unhashable profile is
    refused when it is written instead of failing later inside a hash.
    """
    config = {key: profile.get(key) for key in HASH_FIELDS}
    config["adapter_options"] = normalize_adapter_options(config["adapter_options"])
    try:
        # kept with the model for the snapshot's life: right-sized (see jsonbytes)
        return dumps_kept(config, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError) as exc:
        raise ValidationFailed(
            f"Profile '{profile_name}' has a value that cannot be hashed: {exc}"
        ) from None


def json_string(value: str) -> bytes:
    """orjson text of a string; invalid strings (lone surrogates) become a 422."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise ValidationFailed(f"Name {value!r} cannot be hashed: {exc}") from None


def model_entry_bytes(model_id: str, profiles: Sequence[tuple[str, bytes]]) -> bytes:
    """orjson text of ``{"profiles": [...], "sie_id": model_id}`` from cached fragments.

    ``profiles`` must already be sorted by name and filtered for the bundle. Keys come out in
    sorted order ("config" < "name", "profiles" < "sie_id"), as OPT_SORT_KEYS would emit.
    """
    items = b",".join(
        b'{"config":' + config + b',"name":' + json_string(name) + b"}"
        for name, config in profiles
    )
    return b'{"profiles":[' + items + b'],"sie_id":' + json_string(model_id) + b"}"


def bundle_config_hash_of(entries: Iterable[bytes]) -> str:
    """§4.3 step 7 over model fragments already in model-name order; ``""`` when none."""
    hasher = hashlib.sha256(b"[")
    first = True
    for entry in entries:
        if not first:
            hasher.update(b",")
        hasher.update(entry)
        first = False
    if first:
        return ""
    hasher.update(b"]")
    return hasher.hexdigest()


def reference_bundle_config_hash(items: list[dict[str, Any]]) -> str:
    """The literal §4.3 formula over whole items; tests use it to check the fragment path."""
    if not items:
        return ""
    return hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS)).hexdigest()

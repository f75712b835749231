"""``POST /v1/configs/resolve``: which bundle would serve a model, without serving it.

Same answers as the original (reference §1.8, §3.3), except where it crashed: a body that is
not a JSON object, or a non-string ``model``/``bundle``, is a 400 here (CONTRACT §2 item 5),
and a case-variant model name gets the model's real profiles (item 14).
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import (
    BundleConflict,
    InvalidModelSpec,
    InvalidRequest,
    MissingField,
    ModelNotFound,
    ParseError,
)
from .registry import Registry

SPEC_SEPARATOR = ":/"


def parse_model_spec(spec: str) -> tuple[str | None, str]:
    """Split ``[bundle:/]org/model[:variant]`` into (bundle or None, model).

    The bundle prefix is lowercased (the one place a bundle id is not exact-case, kept from
    the original); the model part is kept verbatim, variant suffix included.
    """
    if not spec or not spec.strip():
        raise InvalidModelSpec("model_spec must not be empty")
    if SPEC_SEPARATOR not in spec:
        return None, spec
    bundle, model = spec.split(SPEC_SEPARATOR, 1)
    bundle = bundle.lower()
    if not bundle:
        raise InvalidModelSpec("Bundle part of model_spec must not be empty")
    if not model:
        raise InvalidModelSpec("Model part of model_spec must not be empty")
    return bundle, model


def parse_resolve_body(body: object) -> dict[str, Any]:
    """The request object from raw bytes/text (empty means ``{}``) or an already-parsed value."""
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        raw = bytes(body) if not isinstance(body, str) else body
        if not raw:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Request body must be a JSON object, got {_json_type(body)}"
        )
    return body


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def resolve(registry: Registry, body: object) -> dict[str, Any]:
    """The 200 body of a resolve request, or the ``DomainError`` its failure maps to."""
    request = parse_resolve_body(body)
    spec = request.get("model")
    if not spec:
        raise MissingField("model")
    if not isinstance(spec, str):
        raise InvalidRequest(f"'model' must be a string, got {_json_type(spec)}")
    spec_bundle, model = parse_model_spec(spec)
    override = spec_bundle
    if override is None:
        override = request.get("bundle")
        if override is not None and not isinstance(override, str):
            raise InvalidRequest(f"'bundle' must be a string, got {_json_type(override)}")
    entry = registry.get_model(model)
    if entry is None or not entry.bundles:
        raise ModelNotFound.for_resolve(model)
    if override and override not in entry.bundles:
        raise BundleConflict(model, override, entry.bundles)
    return {
        "model": model,
        "resolved_bundle": override or entry.bundles[0],
        "compatible_bundles": list(entry.bundles),
        "profiles": entry.profile_names(),
    }

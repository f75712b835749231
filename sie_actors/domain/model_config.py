"""Reading model documents: YAML parsing, profile shape rules, and the canonical profile.

The same functions back a POST on sie-config, a store restore, a gateway bootstrap and a
worker delta, so every service accepts and refuses exactly the same documents. Nothing here
raises anything but ``DomainError`` subclasses, whatever mapping it is given: the rules are
written against "any YAML value", not against well-behaved configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import orjson
import yaml

from .errors import InvalidModelId, ParseError, ValidationFailed
from .ids import MSG_NOT_STRING, validate_model_id

# The four profile fields that define a profile's identity: equality on append and the hash
# both look at these and nothing else.
HASH_FIELDS: tuple[str, ...] = (
    "adapter_path",
    "max_batch_tokens",
    "compute_precision",
    "adapter_options",
)

MSG_NOT_MAPPING = "Expected YAML mapping at top level"
MSG_MISSING_SIE_ID = "Missing required field: sie_id"
MSG_MISSING_PROFILES = "Missing required field: profiles"
MSG_PROFILES_NOT_MAPPING = (
    "Field 'profiles' must be a mapping of profile_name -> profile_config"
)


def decode_utf8(body: bytes | bytearray | memoryview | str) -> str:
    """Text of a request body; invalid UTF-8 is a 400, never a UnicodeDecodeError (a 500)."""
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"Body is not valid UTF-8 (invalid byte at position {exc.start})"
        ) from None


def parse_model_yaml(body: bytes | str) -> dict[str, Any]:
    """Parse a model document as the original does (``yaml.safe_load``, mapping required)."""
    text = decode_utf8(body)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParseError(f"Invalid YAML: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors can fail outside YAMLError on odd scalars (e.g. a timestamp
        # out of range); a body we cannot read is a parse error all the same.
        raise ParseError(f"Invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParseError(MSG_NOT_MAPPING)
    check_expanded_size(data)
    return data


try:  # libyaml's parser, for documents our own services wrote (parse_stored_model_yaml)
    from yaml import CSafeLoader as _StoredLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _StoredLoader = None


def parse_stored_model_yaml(body: bytes | str) -> dict[str, Any]:
    """``parse_model_yaml`` for documents our services wrote: store files read at restore, and
    the ``model_config`` of deltas from a trusted producer.

    Those come from ``dump_model_yaml`` (libyaml's emitter), and libyaml's parser reads them
    about 10x faster than PyYAML's pure-Python one: 10,000 stored models take ~1.5 s instead of
    ~12 s at sie-config's start, and a delta ~0.1 ms instead of ~1.2 ms on every gateway and
    worker. Only scanning and parsing change (the constructor and resolver are SafeLoader's),
    and on emitter output, ours or the original's ``yaml.dump``, both parsers agree
    (tests/unit/test_domain_stored_yaml.py). On odd hand-written YAML libyaml is more lenient
    (``0: !`` reads as ``{0: ''}``, not ``{0: None}``), which is why POST bodies keep the
    original's pure-Python parser. Whatever libyaml refuses, or reads as something other than a
    mapping, goes through ``parse_model_yaml``, so errors read exactly as for a POST body.
    """
    if _StoredLoader is None:
        return parse_model_yaml(body)
    try:
        data = yaml.load(decode_utf8(body), Loader=_StoredLoader)
    except Exception:
        return parse_model_yaml(body)
    if not isinstance(data, dict):
        return parse_model_yaml(body)
    check_expanded_size(data)
    return data


MAX_EXPANDED_NODES = 1_000_000


def check_expanded_size(value: object, limit: int = MAX_EXPANDED_NODES) -> None:
    """Refuse documents that YAML aliases make huge once expanded ("billion laughs").

    ``safe_load`` shares aliased nodes, so a small body can stand for an astronomically large
    value; JSON export, hashing and comparison would then expand it. Counting nodes as a
    serializer would visit them bounds that work before anything else touches the value.
    """
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            raise ParseError(
                f"Document is too large: more than {limit} values once YAML aliases are expanded"
            )
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)


def adapter_module(adapter_path: str) -> str:
    """The module part of ``module:Class`` (the whole string when there is no colon).

    Bundles list modules, not classes, so routing compares modules.
    """
    return adapter_path.split(":", 1)[0]


def canonical_profile(profile: Mapping[str, Any]) -> dict[str, Any]:
    """The 4-field identity of a profile, raw values, missing fields as ``None``.

    Append-equality compares exactly this (no normalization), as the original does; two
    profiles that differ only in other keys (``extends``, ``model_name``...) are "equal".
    """
    return {key: profile.get(key) for key in HASH_FIELDS}


@dataclass(frozen=True)
class ValidatedModel:
    """A model document that passed the shape rules, with each profile's adapter module.

    ``profiles`` is a fresh top-level mapping in document order; ``modules`` maps each profile
    to its adapter module, or ``None`` for a profile without ``adapter_path`` (extends-only),
    which contributes no module and so no route.
    """

    model_id: str
    config: Mapping[str, Any]
    profiles: Mapping[str, Mapping[str, Any]]
    modules: Mapping[str, str | None]

    def module_set(self, names: Any = None) -> frozenset[str]:
        """Modules contributed by ``names`` (all profiles when ``None``)."""
        selected = self.modules if names is None else {n: self.modules[n] for n in names}
        return frozenset(m for m in selected.values() if m)


def _profile_modules(profiles: Mapping[Any, Any], *, strict: bool) -> dict[str, str | None]:
    """Check every profile's shape and find its module, in document order.

    ``strict`` adds the write-path rule that a profile needs ``adapter_path`` or ``extends``
    (the filesystem loader of the original does not check it).
    """
    modules: dict[str, str | None] = {}
    for name, profile in profiles.items():
        if not isinstance(name, str):
            raise ValidationFailed(f"Profile name {name!r} must be a string")
        if not isinstance(profile, Mapping):
            raise ValidationFailed(f"Profile '{name}' must be a mapping")
        path = profile.get("adapter_path")
        if strict and not path and not profile.get("extends"):
            raise ValidationFailed(f"Profile '{name}' missing adapter_path")
        if path and not isinstance(path, str):
            raise ValidationFailed(
                f"Profile '{name}' adapter_path must be a string 'module:Class', "
                f"got {type(path).__name__}"
            )
        modules[name] = adapter_module(path) if path else None
    return modules


def validate_model_config(config: object) -> ValidatedModel:
    """Write-path shape rules (reference §2.2 and §2.3 rules 1-4, in that order).

    Registry-dependent rules (routability, append-only equality) live in
    ``registry.plan_append``, which calls this first.
    """
    if not isinstance(config, Mapping):
        raise ParseError(MSG_NOT_MAPPING)
    sie_id = config.get("sie_id")
    if sie_id:
        # Truthy ids are checked before the 422 rules, as in the original (400 wins).
        validate_model_id(sie_id)
    else:
        raise ValidationFailed(MSG_MISSING_SIE_ID)
    profiles = config.get("profiles")
    if not profiles:
        raise ValidationFailed(MSG_MISSING_PROFILES)
    if not isinstance(profiles, Mapping):
        raise ValidationFailed(MSG_PROFILES_NOT_MAPPING)
    modules = _profile_modules(profiles, strict=True)
    return ValidatedModel(sie_id, config, dict(profiles), modules)


def read_filesystem_model(config: object) -> ValidatedModel:
    """Load-path rules for baseline model files (reference §3.1): lenient like the original.

    Accepts ``name`` as an alias of ``sie_id``, a missing ``profiles`` (a model with no
    route), and profiles without ``adapter_path``; the caller skips the file on any error.
    """
    if not isinstance(config, Mapping):
        raise ParseError(MSG_NOT_MAPPING)
    model_id = config.get("sie_id") or config.get("name")
    if not model_id:
        raise ValidationFailed("Missing required field: sie_id (or name)")
    if not isinstance(model_id, str):
        raise InvalidModelId(MSG_NOT_STRING)
    profiles = config.get("profiles")
    if profiles is None:
        profiles = {}
    if not isinstance(profiles, Mapping):
        raise ValidationFailed(MSG_PROFILES_NOT_MAPPING)
    modules = _profile_modules(profiles, strict=False)
    return ValidatedModel(model_id, config, dict(profiles), modules)


def ensure_json_compatible(config: Mapping[str, Any]) -> None:
    """Refuse documents that export (JSON) could not carry, instead of a 500 at export time.

    YAML can express sets, binary, non-string keys and 65-bit integers; JSON cannot.
    """
    try:
        orjson.dumps(config)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError) as exc:
        raise ValidationFailed(f"Model config cannot be represented as JSON: {exc}") from None

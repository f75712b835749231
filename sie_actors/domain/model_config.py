"""Reading and writing model documents: YAML parsing, the one serializer, profile shape rules,
and the canonical profile.

The same functions back a POST on sie-config, a store restore, a gateway bootstrap and a
worker delta, so every service accepts and refuses exactly the same documents. Nothing here
raises anything but ``DomainError`` subclasses, whatever mapping it is given: the rules are
written against "any YAML value", not against well-behaved configs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping

import orjson
import yaml

from .errors import DocumentTooComplex, DomainError, InvalidModelId, ParseError, ValidationFailed
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


# Node budget of one document (scalars, sequences, mappings and aliases as written, before
# aliases are expanded). The shipped catalog's largest model has about 100; the budget bounds
# the CPU one write can cost (PyYAML's pure-Python parser needs ~30 us a node) whatever the body.
MAX_DOCUMENT_NODES = 20_000
# Values once aliases are expanded ("billion laughs"): bounds export, hashing and comparison.
MAX_EXPANDED_NODES = 1_000_000


class _BudgetedSafeLoader(yaml.SafeLoader):
    """SafeLoader that stops composing after ``MAX_DOCUMENT_NODES`` nodes.

    Counting in ``compose_node`` stops a pathological body after the budget's worth of work,
    instead of first building every node it asks for.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes_left = MAX_DOCUMENT_NODES

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self.nodes_left -= 1
        if self.nodes_left < 0:
            raise DocumentTooComplex(_too_many_nodes())
        return super().compose_node(parent, index)


def _too_many_nodes() -> str:
    return (f"Document is too complex: more than {MAX_DOCUMENT_NODES} YAML nodes "
            "(values, mappings, sequences and aliases)")


def parse_model_yaml(body: bytes | str) -> dict[str, Any]:
    """Parse a model document as the original does (``yaml.safe_load``, mapping required),
    then keep it to plain data (``plain_document``).

    Untrusted text reaches this from POST bodies and from NATS deltas, so whatever PyYAML raises
    on it (``YAMLError``, but also ``AttributeError`` on ``!!timestamp 99999-01-01``,
    ``RecursionError`` on deep nesting, ``ValueError`` on a 5,000-digit integer...) becomes a
    ``ParseError``: consumers rely on this function raising ``DomainError`` and nothing else.
    """
    text = decode_utf8(body)
    try:
        loader = _BudgetedSafeLoader(text)  # the reader already checks characters
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except DomainError:
        raise
    except yaml.YAMLError as exc:
        raise ParseError(f"Invalid YAML: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure on untrusted text is the text's
        raise ParseError(f"Invalid YAML: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise ParseError(MSG_NOT_MAPPING)
    return plain_document(data)


try:  # libyaml's parser, for documents our own services wrote (parse_stored_model_yaml)
    from yaml import CSafeLoader as _StoredLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _StoredLoader = None

_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent,
                yaml.AliasEvent)


def _within_node_budget(text: str) -> bool:
    """libyaml's event stream counted up to the budget (cheap: C, stops early).

    A node takes at least one character, so short texts need no count.
    """
    if len(text) <= MAX_DOCUMENT_NODES:
        return True
    left = MAX_DOCUMENT_NODES
    for event in yaml.parse(text, Loader=_StoredLoader):
        if isinstance(event, _NODE_EVENTS):
            left -= 1
            if left < 0:
                return False
    return True


try:  # libyaml's emitter with the safe representer: ~5x faster; output parses back identically
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

def dump_model_yaml(config: Mapping[str, Any]) -> str:
    """The one serializer of model documents (store files, deltas, export ``raw_yaml``).

    The original's call (``yaml.dump``, block style, document key order). Only the parsed
    value matters to every consumer, so the faster libyaml emitter is used when present. The
    *safe* representer: on plain data it writes what ``yaml.dump`` writes, and anything else is
    refused (422) instead of being written with a ``!!python/...`` tag that no consumer's safe
    parser can read back (an acknowledged write lost at the next restore).
    """
    try:
        return yaml.dump(dict(config), Dumper=_Dumper, default_flow_style=False,
                         sort_keys=False)
    except yaml.YAMLError as exc:  # RepresenterError: a value YAML's safe schema cannot write
        raise ValidationFailed(f"Model config cannot be stored as plain YAML: {exc}") from None


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
    mapping, goes through ``parse_model_yaml``, so errors read exactly as for a POST body. The
    same node budget and plain-data rules apply: a forged delta is untrusted text too.
    """
    if _StoredLoader is None:
        return parse_model_yaml(body)
    text = decode_utf8(body)
    try:
        if not _within_node_budget(text):
            raise DocumentTooComplex(_too_many_nodes())
        data = yaml.load(text, Loader=_StoredLoader)
    except DomainError:
        raise
    except Exception:  # noqa: BLE001 - the pure-Python parser names the problem
        return parse_model_yaml(text)
    if not isinstance(data, dict):
        return parse_model_yaml(text)
    return plain_document(data)


def plain_document(data: dict[str, Any]) -> dict[str, Any]:
    """Keep a parsed document to plain data, which every consumer reads back the same.

    Plain data is what JSON can carry: mappings, sequences, strings, finite numbers within 64
    bits, booleans and null. ``yaml.safe_load`` gives more, and each extra either breaks the
    store round trip (``!!omap`` and ``!!pairs`` give tuples, which the emitter writes as
    ``!!python/tuple``, which no safe parser reads back) or the JSON export (sets, binary,
    NaN and infinities). Those are refused with a 422 naming the value. Timestamps are the one
    normalisation: an unquoted ``2024-05-01`` (implicit in YAML 1.1) becomes the string that
    orjson, and so the config hash, already made of it, so a hand-written date keeps working and
    hashes exactly as before. Non-string keys are left for the validation rules that name them.

    Also bounds the document once aliases are expanded ("billion laughs"): ``safe_load`` shares
    aliased nodes, so a small body can stand for an astronomically large value that export,
    hashing and comparison would then expand. Works in place (the value is freshly parsed) and
    iteratively (no recursion limit on deep documents).
    """
    stack: list[object] = [data]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_EXPANDED_NODES:
            raise DocumentTooComplex(
                f"Document is too large: more than {MAX_EXPANDED_NODES} values once YAML "
                "aliases are expanded"
            )
        if isinstance(item, dict):
            if any(isinstance(key, (date, datetime)) for key in item):
                items = [(_plain_scalar(k) if isinstance(k, (date, datetime)) else k, v)
                         for k, v in item.items()]
                item.clear()
                item.update(items)
            for key, value in item.items():
                if isinstance(value, (dict, list)):
                    stack.append(value)
                else:
                    item[key] = _plain_scalar(value)
        elif isinstance(item, list):
            for index, value in enumerate(item):
                if isinstance(value, (dict, list)):
                    stack.append(value)
                else:
                    item[index] = _plain_scalar(value)
    return data


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _plain_scalar(value: object) -> object:
    """A scalar of plain data, a timestamp as its orjson text, or a 422 naming the value."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _UINT64_MAX:
            raise ValidationFailed(
                f"Integer {value} is outside the 64-bit range JSON export can carry")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationFailed(
                f"Number {value!r} (.nan/.inf) cannot be represented as JSON; quote it")
        return value
    if isinstance(value, (date, datetime)):
        return orjson.loads(orjson.dumps(value))
    raise ValidationFailed(_not_plain_message(value))


def _not_plain_message(value: object) -> str:
    kinds = {tuple: "!!omap/!!pairs ordered pairs", set: "!!set", frozenset: "!!set",
             bytes: "!!binary"}
    kind = kinds.get(type(value), type(value).__name__)
    return (f"Unsupported YAML value ({kind}): model documents hold only mappings, sequences, "
            "strings, numbers, booleans and null")


def ensure_reads_back(config: Mapping[str, Any], text: str) -> None:
    """Refuse (422) a document whose stored text would not read back as the same config.

    Called before a write is acknowledged: the store file, the delta and export's ``raw_yaml``
    are ``text``, and restore, gateways and workers read it with ``parse_stored_model_yaml``.
    Compared as orjson text, which tells ``1`` from ``1.0`` and ``true`` and keeps key order.
    """
    try:
        same = orjson.dumps(parse_stored_model_yaml(text)) == orjson.dumps(config)
    except DomainError:
        same = False
    except (orjson.JSONEncodeError, TypeError):
        same = False
    if not same:
        raise ValidationFailed(
            "Model config does not read back the same once stored (unsupported YAML value); "
            "nothing was written"
        )


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

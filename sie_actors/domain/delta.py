"""The NATS config delta and producer trust.

The payload keeps the original's keys and order (reference §6.3) so either side of the wire
can be the original; ``generation`` is ours (CONTRACT §2 item 3) and goes last, where
original consumers ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import orjson

from .errors import ParseError

SUBJECT_PREFIX = "sie.config.models."
ALL_SUBJECT = SUBJECT_PREFIX + "_all"
# Ours (the original has no such message): sie-config says it is serving, on every connect.
STARTED_SUBJECT = "sie.config.started"
DEFAULT_TRUSTED_PRODUCERS: tuple[str, ...] = ("sie-config",)


def bundle_subject(bundle_id: str) -> str:
    """Per-bundle subject; the bundle id goes in verbatim, as in the original."""
    return SUBJECT_PREFIX + bundle_id


@dataclass(frozen=True)
class ConfigDelta:
    """One published change: a model write, as seen by one bundle's subscribers."""

    router_id: str
    bundle_id: str
    epoch: int
    bundle_config_hash: str
    model_id: str
    profiles_added: tuple[str, ...]
    model_config: str
    affected_bundles: tuple[str, ...]
    generation: str = ""

    def to_json_bytes(self) -> bytes:
        """Compact orjson in the wire key order."""
        return orjson.dumps(
            {
                "router_id": self.router_id,
                "bundle_id": self.bundle_id,
                "epoch": self.epoch,
                "bundle_config_hash": self.bundle_config_hash,
                "model_id": self.model_id,
                "profiles_added": list(self.profiles_added),
                "model_config": self.model_config,
                "affected_bundles": list(self.affected_bundles),
                "generation": self.generation,
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> ConfigDelta:
        """Decode a payload; ``ParseError`` for anything that is not a well-typed delta.

        Unknown keys are ignored (the wire may grow); a missing ``generation`` (an original
        producer) reads as ``""``.
        """
        try:
            obj = orjson.loads(data)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise ParseError(f"Invalid delta JSON: {exc}") from None
        return cls.from_mapping(obj)

    @classmethod
    def from_mapping(cls, obj: object) -> ConfigDelta:
        """A decoded payload (one item of sie-config's `/v1/configs/deltas` answer, say)."""
        if not isinstance(obj, dict):
            raise ParseError("Delta must be a JSON object")
        return cls(
            router_id=_str(obj, "router_id"),
            bundle_id=_str(obj, "bundle_id"),
            epoch=_int(obj, "epoch"),
            bundle_config_hash=_str(obj, "bundle_config_hash"),
            model_id=_str(obj, "model_id"),
            profiles_added=_str_list(obj, "profiles_added"),
            model_config=_str(obj, "model_config"),
            affected_bundles=_str_list(obj, "affected_bundles"),
            generation=_str(obj, "generation", default=""),
        )


_MISSING = object()


def _get(obj: dict[str, Any], key: str, default: Any) -> Any:
    value = obj.get(key, default)
    if value is _MISSING:
        raise ParseError(f"Delta is missing '{key}'")
    return value


def _str(obj: dict[str, Any], key: str, default: Any = _MISSING) -> str:
    value = _get(obj, key, default)
    if not isinstance(value, str):
        raise ParseError(f"Delta field '{key}' must be a string")
    return value


def _int(obj: dict[str, Any], key: str) -> int:
    value = _get(obj, key, _MISSING)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParseError(f"Delta field '{key}' must be a non-negative integer")
    return value


def _str_list(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = _get(obj, key, _MISSING)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"Delta field '{key}' must be a list of strings")
    return tuple(value)


def write_deltas(router_id: str, model_id: str, profiles_added: Sequence[str],
                 model_config: str, bundles: Sequence[str], epoch: int, generation: str,
                 bundle_hash: Callable[[str], str]) -> tuple[ConfigDelta, ...]:
    """A model write as published: one delta per affected bundle (its subject and `_all`),
    each with that bundle's hash after the write (reference §6.3)."""
    affected = tuple(bundles)
    return tuple(
        ConfigDelta(router_id=router_id, bundle_id=bundle, epoch=epoch,
                    bundle_config_hash=bundle_hash(bundle), model_id=model_id,
                    profiles_added=tuple(profiles_added), model_config=model_config,
                    affected_bundles=affected, generation=generation)
        for bundle in affected)


def is_trusted_producer(
    router_id: object, trusted: Sequence[str] = DEFAULT_TRUSTED_PRODUCERS
) -> bool:
    """True when ``router_id`` is a trusted entry or ``<entry>-<anything>`` (CONTRACT item 13).

    The dash keeps ``sie-configurator`` out while admitting pod names like ``sie-config-0``.
    """
    if not isinstance(router_id, str) or not router_id:
        return False
    for entry in trusted:
        if entry and (router_id == entry or router_id.startswith(entry + "-")):
            return True
    return False


def parse_trusted_producers(value: str | None) -> tuple[str, ...]:
    """``SIE_NATS_CONFIG_TRUSTED_PRODUCERS`` (comma-separated); unset or blank → default."""
    entries = tuple(p.strip() for p in (value or "").split(",") if p.strip())
    return entries or DEFAULT_TRUSTED_PRODUCERS


def started_announcement(router_id: str, epoch: int, generation: str) -> bytes:
    """What sie-config publishes on `STARTED_SUBJECT` once it serves: a mirror that hears it
    reads `/v1/configs/epoch` at once. Why: killed between storing a write and publishing it,
    sie-config comes back an epoch ahead of every mirror, and nothing else would tell them
    until the next write or routine poll."""
    return orjson.dumps({"router_id": router_id, "epoch": epoch, "generation": generation})


def announcer(raw: bytes) -> str | None:
    """The ``router_id`` of a started announcement, for the producer check; None if unreadable.
    The rest is not trusted either way: the mirror reads sie-config's epoch itself."""
    try:
        obj = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    value = obj.get("router_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None

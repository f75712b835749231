"""Bundles: which adapter modules one worker image can run.

Bundles are build-time data (a YAML file per bundle, or the YAML view sie-config serves to
gateways); the domain only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import ParseError
from .model_config import decode_utf8

DEFAULT_PRIORITY = 100


@dataclass(frozen=True)
class Bundle:
    """One bundle. Lower ``priority`` is preferred; ``default`` plays no role in routing.

    ``adapters`` keeps file order (the YAML view shows it); ``adapter_set`` is for routing.
    """

    name: str
    priority: int
    adapters: tuple[str, ...]
    default: bool = False
    adapter_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapters", tuple(self.adapters))
        object.__setattr__(self, "adapter_set", frozenset(self.adapters))


def bundle_from_mapping(data: Any, stem: str) -> Bundle:
    """Build a bundle from a parsed document (§3.1 defaults); ``ParseError`` if malformed.

    Stricter than the original on types (a non-integer priority or a non-string adapter
    would later break sorting and hashing), equal on everything it accepted.
    """
    if data is None:
        data = {}  # an empty file is a bundle named after its file, with no adapters
    if not isinstance(data, dict):
        raise ParseError(f"Bundle '{stem}': expected a YAML mapping at top level")
    name = data.get("name")
    if name is None:
        name = stem
    if not isinstance(name, str) or not name:
        raise ParseError(f"Bundle '{stem}': 'name' must be a non-empty string")
    priority = data.get("priority")
    if priority is None:
        priority = DEFAULT_PRIORITY
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ParseError(f"Bundle '{name}': 'priority' must be an integer")
    adapters = data.get("adapters")
    if adapters is None:
        adapters = []
    if not isinstance(adapters, list) or not all(isinstance(a, str) for a in adapters):
        raise ParseError(f"Bundle '{name}': 'adapters' must be a list of module names")
    return Bundle(name, priority, tuple(adapters), bool(data.get("default", False)))


def parse_bundle_yaml(text: str | bytes, stem: str) -> Bundle:
    """Parse one bundle file (or sie-config's bundle YAML view); ``stem`` is the default name."""
    try:
        data = yaml.safe_load(decode_utf8(text))
    except ParseError as exc:
        raise ParseError(f"Bundle '{stem}': {exc.message}") from None
    except Exception as exc:  # noqa: BLE001 - PyYAML can raise anything on odd text
        # (AttributeError on `!!timestamp 99999-01-01`): all of it is the text's fault.
        raise ParseError(f"Bundle '{stem}': invalid YAML: {exc}") from None
    return bundle_from_mapping(data, stem)

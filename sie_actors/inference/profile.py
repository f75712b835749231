"""The one profile an adapter is built from, with ``extends`` resolved as the original does.

A child profile's non-null ``adapter_path``/``max_batch_tokens``/``compute_precision`` override
the parent's; its ``loadtime`` and ``runtime`` dicts each replace the parent's wholesale when
non-empty (one level of ``extends`` only, as in the original).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ModelLoadFailed


@dataclass(frozen=True)
class ResolvedProfile:
    name: str
    adapter_path: str
    max_batch_tokens: int | None
    compute_precision: str | None
    loadtime: Mapping[str, Any] = field(default_factory=dict)
    runtime: Mapping[str, Any] = field(default_factory=dict)


def _options(profile: Mapping[str, Any], kind: str) -> dict[str, Any]:
    opts = profile.get("adapter_options") or {}
    value = opts.get(kind) if isinstance(opts, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def resolve_profile(config: Mapping[str, Any], name: str = "default") -> ResolvedProfile:
    """Resolve profile ``name`` of a model config; a missing piece is a ``ModelLoadFailed``."""
    profiles = config.get("profiles")
    if not isinstance(profiles, Mapping) or not isinstance(profiles.get(name), Mapping):
        raise ModelLoadFailed(f"model {config.get('sie_id')!r} has no profile {name!r}")
    child = profiles[name]
    parent_name = child.get("extends")
    parent: Mapping[str, Any] = {}
    if parent_name:
        parent = profiles.get(parent_name)
        if not isinstance(parent, Mapping):
            raise ModelLoadFailed(f"profile {name!r} extends unknown profile {parent_name!r}")

    def pick(key: str) -> Any:
        value = child.get(key)
        return parent.get(key) if value is None else value

    adapter_path = pick("adapter_path")
    if not isinstance(adapter_path, str) or not adapter_path:
        raise ModelLoadFailed(f"profile {name!r} has no adapter_path")
    max_batch_tokens = pick("max_batch_tokens")
    return ResolvedProfile(
        name=name, adapter_path=adapter_path,
        max_batch_tokens=max_batch_tokens if isinstance(max_batch_tokens, int) else None,
        compute_precision=pick("compute_precision"),
        loadtime=_options(child, "loadtime") or _options(parent, "loadtime"),
        runtime=_options(child, "runtime") or _options(parent, "runtime"))

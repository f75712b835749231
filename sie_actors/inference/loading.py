"""From a model config to a loaded adapter: profile, adapter path, weights, in that order.

Each step raises ``ModelLoadFailed`` with the step's own explanation, so the worker reports the
real reason (unknown adapter, weights nowhere, unsupported architecture) as a terminal error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .adapters.base import AdapterFactory, EmbeddingAdapter, LoadSpec
from .adapters.registry import adapter_factory
from .profile import ResolvedProfile, resolve_profile
from .weights import resolve_weights


def check_servable(config: Mapping[str, Any], profile: str = "default"
                   ) -> tuple[ResolvedProfile, AdapterFactory]:
    """The steps of a load that need no I/O (the profile, an adapter this worker has), or
    ``ModelLoadFailed``: cheap enough to ask of every model of a bundle before preloading it."""
    resolved = resolve_profile(config, profile)
    return resolved, adapter_factory(resolved.adapter_path)


def load_adapter(config: Mapping[str, Any], *, profile: str = "default",
                 threads: int | None = None,
                 environ: Mapping[str, str] | None = None,
                 graph_cache: Path | None = None) -> EmbeddingAdapter:
    resolved, factory = check_servable(config, profile)
    location = resolve_weights(config, environ=environ)
    max_len = config.get("max_sequence_length")
    spec = LoadSpec(model_id=str(config.get("sie_id") or config.get("hf_id")),
                    max_sequence_length=max_len if isinstance(max_len, int) and max_len > 0 else None,
                    loadtime=resolved.loadtime, runtime=resolved.runtime, threads=threads,
                    graph_cache=graph_cache)
    return factory(spec, location.path)

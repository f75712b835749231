"""From a model config to a loaded adapter: profile, adapter path, weights, in that order.

Each step raises ``ModelLoadFailed`` with the step's own explanation, so the worker reports the
real reason (unknown adapter, weights nowhere, unsupported architecture) as a terminal error.
"""

from __future__ import annotations

from typing import Any, Mapping

from .adapters.base import EmbeddingAdapter, LoadSpec
from .adapters.registry import adapter_factory
from .profile import resolve_profile
from .weights import resolve_weights


def load_adapter(config: Mapping[str, Any], *, profile: str = "default",
                 threads: int | None = None,
                 environ: Mapping[str, str] | None = None) -> EmbeddingAdapter:
    resolved = resolve_profile(config, profile)
    factory = adapter_factory(resolved.adapter_path)
    location = resolve_weights(config, environ=environ)
    max_len = config.get("max_sequence_length")
    spec = LoadSpec(model_id=str(config.get("sie_id") or config.get("hf_id")),
                    max_sequence_length=max_len if isinstance(max_len, int) and max_len > 0 else None,
                    loadtime=resolved.loadtime, runtime=resolved.runtime, threads=threads)
    return factory(spec, location.path)

"""The interface every adapter implements, and the options an encode call carries.

Kept deliberately small (load, encode, dims, token counts) so a GPU/torch adapter can be added
later as an optional extra without touching the worker: the worker only ever sees this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class LoadSpec:
    """What an adapter is built from: the model config's relevant fields and the profile."""

    model_id: str
    max_sequence_length: int | None = None
    loadtime: Mapping[str, Any] = field(default_factory=dict)
    runtime: Mapping[str, Any] = field(default_factory=dict)
    threads: int | None = None       # compute threads; None lets the runtime decide
    graph_cache: Path | None = None  # where built graphs are kept between loads (None: nowhere)


@dataclass(frozen=True)
class EncodeOptions:
    """Per-request knobs. ``pooling``/``normalize`` of ``None`` mean "the profile's default"."""

    is_query: bool = False
    instruction: str | None = None
    pooling: str | None = None
    normalize: bool | None = None


class EmbeddingAdapter(Protocol):
    @property
    def dims(self) -> int: ...

    def encode(self, texts: Sequence[str], options: EncodeOptions) -> np.ndarray:
        """One float32 row of ``dims`` values per text, in input order."""

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text costs after truncation (the batcher's ``max_batch_tokens`` unit)."""


class AdapterFactory(Protocol):
    def __call__(self, spec: LoadSpec, weights_dir: Path) -> EmbeddingAdapter: ...

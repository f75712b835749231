"""Pooling token states into one vector per text, and L2 normalisation (numpy)."""

from __future__ import annotations

import numpy as np

POOLINGS = ("mean", "cls")


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """``hidden`` ``[batch, seq, dim]``, ``mask`` ``[batch, seq]`` (1 = real token)."""
    if mode == "cls":
        return hidden[:, 0, :]
    if mode == "mean":
        weights = mask[..., None].astype(hidden.dtype)
        summed = np.einsum("bsd,bsx->bd", hidden, weights)
        counts = np.clip(weights.sum(axis=1), 1e-9, None)   # as sentence-transformers clamps
        return summed / counts
    raise ValueError(f"unknown pooling {mode!r} (supported: {', '.join(POOLINGS)})")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)

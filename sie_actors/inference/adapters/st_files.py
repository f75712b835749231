"""What a sentence-transformers model folder says about tokenising and pooling.

Read so that a model served without profile runtime options still behaves as
sentence-transformers would: ``sentence_bert_config.json`` (``max_seq_length``),
``1_Pooling/config.json`` (which pooling), ``modules.json`` (is there a ``Normalize`` module).
Absent files mean "not a sentence-transformers folder" and yield ``None``s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SentenceTransformerDefaults:
    max_seq_length: int | None
    pooling: str | None
    normalize: bool | None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pooling_folder(folder: Path, modules: Any) -> Path:
    if isinstance(modules, list):
        for module in modules:
            if isinstance(module, dict) and str(module.get("type", "")).endswith(".Pooling"):
                return folder / str(module.get("path") or "1_Pooling")
    return folder / "1_Pooling"


def read_defaults(folder: Path) -> SentenceTransformerDefaults:
    bert_cfg = _read_json(folder / "sentence_bert_config.json")
    max_len = bert_cfg.get("max_seq_length") if isinstance(bert_cfg, dict) else None
    modules = _read_json(folder / "modules.json")
    pooling_cfg = _read_json(_pooling_folder(folder, modules) / "config.json")
    pooling = None
    if isinstance(pooling_cfg, dict):
        if pooling_cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif pooling_cfg.get("pooling_mode_mean_tokens"):
            pooling = "mean"
    normalize = None
    if isinstance(modules, list):
        normalize = any(isinstance(m, dict) and str(m.get("type", "")).endswith(".Normalize")
                        for m in modules)
    return SentenceTransformerDefaults(
        max_seq_length=max_len if isinstance(max_len, int) and max_len > 0 else None,
        pooling=pooling, normalize=normalize)

"""File names inside a store, shared by every backend.

The ``epoch`` file and the ``models/{id with "/" as "__"}.yaml`` files must stay exactly as the
original sie-config lays them out, so that a store written by it can be restored by us (and the
other way round). ``generation`` and ``idempotency/`` are our additions; the original ignores them.
Paths here are relative and "/"-separated; each backend joins them to its own base.
"""

from __future__ import annotations

import hashlib

EPOCH_FILE = "epoch"
GENERATION_FILE = "generation"
MODELS_DIR = "models"
IDEMPOTENCY_DIR = "idempotency"
MODEL_SUFFIX = ".yaml"
IDEMPOTENCY_SUFFIX = ".json"
TEMP_SUFFIX = ".tmp"

_SLASH_ESCAPE = "__"


def check_model_id(model_id: str) -> None:
    """Refuse ids whose file name would escape ``models/`` or collide with another id.

    The domain validates ids before they reach us; this is defence in depth, because a bad id
    here means writing outside the store or silently merging two models into one file.
    """
    if not isinstance(model_id, str) or not model_id:
        raise ValueError("model id must be a non-empty string")
    if _SLASH_ESCAPE in model_id:
        raise ValueError(f"model id {model_id!r} contains '__', which the store uses for '/'")
    if ".." in model_id:
        raise ValueError(f"model id {model_id!r} contains '..'")
    if model_id.startswith("/"):
        raise ValueError(f"model id {model_id!r} starts with '/'")
    if "\\" in model_id or "\x00" in model_id:
        raise ValueError(f"model id {model_id!r} contains a backslash or NUL")
    # "a_/b" and "a/_b" both map to "a___b.yaml"; only one of them can be read back.
    if model_id_from_file_name(_file_name(model_id)) != model_id:
        raise ValueError(
            f"model id {model_id!r} cannot be stored unambiguously ('_' right before '/')"
        )


def _file_name(model_id: str) -> str:
    return model_id.replace("/", _SLASH_ESCAPE) + MODEL_SUFFIX


def model_path(model_id: str) -> str:
    """Relative path of a model's YAML file, after checking the id."""
    check_model_id(model_id)
    return f"{MODELS_DIR}/{_file_name(model_id)}"


def model_path_for_file_name(file_name: str) -> str:
    """Relative path of a listed file; listed names may come from the original, so no checks."""
    return f"{MODELS_DIR}/{file_name}"


def model_id_from_file_name(file_name: str) -> str | None:
    """Map a listed file name back to its id, or None for anything that is not a model file.

    Hidden names are skipped because they are temp files of an interrupted atomic write.
    """
    if file_name.startswith(".") or not file_name.endswith(MODEL_SUFFIX):
        return None
    stem = file_name[: -len(MODEL_SUFFIX)]
    if not stem:
        return None
    return stem.replace(_SLASH_ESCAPE, "/")


def idempotency_path(key: str) -> str:
    """Relative path of a key's record; hashed because keys are arbitrary client strings."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{IDEMPOTENCY_DIR}/{digest}{IDEMPOTENCY_SUFFIX}"


def is_idempotency_file_name(file_name: str) -> bool:
    """True for record files, False for temp files and strays."""
    return not file_name.startswith(".") and file_name.endswith(IDEMPOTENCY_SUFFIX)


def is_temp_file_name(file_name: str) -> bool:
    """True for leftovers of an interrupted atomic write (ours and the original's pattern)."""
    return file_name.startswith(".") and file_name.endswith(TEMP_SUFFIX)

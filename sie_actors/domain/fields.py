"""The known fields of a model document and of a bundle file, and the warnings for the rest.

Unknown fields are accepted (the original accepts them, and a stored document must stay readable
whatever a later version knows), but a misspelt field stored silently is a bug found weeks later
on a worker. So every unknown key at a level with a known schema is named in the write's
``warnings``, with the closest known field. This list is the one the docs' field tables are
checked against (tests/unit/test_docs_model_config.py), so the two cannot drift apart.

Levels are dotted paths; ``*`` stands for a name the user chooses (a profile name, an encode
kind). ``adapter_options.loadtime`` and ``.runtime`` are adapter keyword arguments: free-form,
never warned about.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterator, Mapping

MODEL_SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("sie_id", "name", "hf_id", "hf_revision", "weights_path", "package_backed", "inputs",
         "tasks", "max_sequence_length", "profiles"),
    "inputs": ("text", "image", "audio", "video", "document"),
    "tasks": ("encode", "score", "extract"),
    "tasks.encode": ("dense", "sparse", "multivector"),
    "tasks.encode.*": ("dim",),
    "profiles.*": ("adapter_path", "max_batch_tokens", "compute_precision", "adapter_options",
                   "extends", "adaptive_batching"),
    "profiles.*.adapter_options": ("loadtime", "runtime"),
    "profiles.*.adaptive_batching": ("target_p50_ms", "calibration_multiplier",
                                     "min_target_p50_ms", "max_target_p50_ms", "min_wait_ms",
                                     "max_wait_ms", "gain", "integral_gain"),
}

BUNDLE_SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("name", "priority", "default", "adapters"),
}

# Levels whose keys are names chosen by the user: their values follow the `<level>.*` schema.
_NAMED_LEVELS = ("profiles", "tasks.encode")


def known_field_paths(schema: Mapping[str, tuple[str, ...]] = MODEL_SCHEMA) -> list[str]:
    """Every known field as a dotted path (``profiles.*.adapter_path``), in schema order."""
    return [f"{level}.{name}" if level else name
            for level, names in schema.items() for name in names]


def closest(name: str, known: tuple[str, ...]) -> str | None:
    """The known field a misspelt ``name`` most likely meant, or ``None``."""
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_field_message(key: object, where: str, known: tuple[str, ...]) -> str:
    place = f"in {where}" if where else "at the top level"
    text = f"unknown field {key!r} {place}"
    guess = closest(key, known) if isinstance(key, str) else None
    if guess is not None:
        return f"{text}; did you mean {guess!r}?"
    return f"{text} (known fields: {', '.join(known)})"


def _levels(document: Mapping[Any, Any], schema: Mapping[str, tuple[str, ...]]
            ) -> Iterator[tuple[str, str, Mapping[Any, Any]]]:
    """(schema level, concrete path, mapping) for every mapping of ``document`` with a schema."""
    pending: list[tuple[str, str, Any]] = [("", "", document)]
    while pending:
        level, path, value = pending.pop(0)
        if not isinstance(value, Mapping):
            continue  # a wrong type is the validator's business, not a field-name question
        if level in schema:
            yield level, path, value
            for key, child in value.items():
                child_level = f"{level}.{key}" if level else str(key)
                if child_level in schema or child_level in _NAMED_LEVELS:
                    pending.append((child_level, f"{path}.{key}" if path else str(key), child))
        if level in _NAMED_LEVELS:
            for key, child in value.items():
                pending.append((f"{level}.*", f"{path}.{key}", child))


def unknown_field_warnings(document: object,
                           schema: Mapping[str, tuple[str, ...]] = MODEL_SCHEMA) -> list[str]:
    """One warning per unknown key, in document order; nothing for a non-mapping document."""
    if not isinstance(document, Mapping):
        return []
    warnings = []
    for level, path, mapping in _levels(document, schema):
        known = schema[level]
        for key in mapping:
            if key not in known:
                warnings.append(unknown_field_message(key, path, known))
    return warnings


def unknown_bundle_field_warnings(document: object) -> list[str]:
    return unknown_field_warnings(document, BUNDLE_SCHEMA)

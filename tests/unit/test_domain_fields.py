"""Unknown-field warnings: every level with a known schema, closest known field suggested."""

from __future__ import annotations

from pathlib import Path

import yaml

from sie_actors.domain.fields import (BUNDLE_SCHEMA, MODEL_SCHEMA, known_field_paths,
                                      unknown_bundle_field_warnings, unknown_field_warnings)

ROOT = Path(__file__).resolve().parents[2]


def test_each_level_names_the_unknown_field_and_the_closest_known_one() -> None:
    document = {
        "sie_id": "a/b", "hf_idd": "a/b", "inputs": {"txt": True},
        "tasks": {"scor": {}, "encode": {"dense": {"dims": 3}}},
        "profiles": {"default": {"adapter_path": "m:C", "max_batch_token": 1,
                                 "adapter_options": {"runtim": {}, "loadtime": {"free": 1}},
                                 "adaptive_batching": {"gian": 1}}},
    }
    assert sorted(unknown_field_warnings(document)) == sorted([
        "unknown field 'hf_idd' at the top level; did you mean 'hf_id'?",
        "unknown field 'txt' in inputs; did you mean 'text'?",
        "unknown field 'scor' in tasks; did you mean 'score'?",
        "unknown field 'dims' in tasks.encode.dense; did you mean 'dim'?",
        "unknown field 'max_batch_token' in profiles.default; did you mean 'max_batch_tokens'?",
        "unknown field 'runtim' in profiles.default.adapter_options; did you mean 'runtime'?",
        "unknown field 'gian' in profiles.default.adaptive_batching; did you mean 'gain'?",
    ])


def test_a_field_with_no_close_match_lists_the_known_ones() -> None:
    [warning] = unknown_field_warnings({"sie_id": "a", "zzzzzz": 1, "profiles": {}})
    assert warning.startswith("unknown field 'zzzzzz' at the top level (known fields: sie_id, ")


def test_adapter_keyword_arguments_are_free_form() -> None:
    document = {"sie_id": "a", "profiles": {"p": {"adapter_options": {
        "loadtime": {"anything": 1}, "runtime": {"pooling": "mean", "x": {"y": 1}}}}}}
    assert unknown_field_warnings(document) == []


def test_wrong_types_and_non_string_keys_do_not_raise() -> None:
    assert unknown_field_warnings([1, 2]) == []
    assert unknown_field_warnings({"sie_id": "a", "profiles": [1], "inputs": "text"}) == []
    assert unknown_field_warnings({"sie_id": "a", 3: 1, "profiles": {"p": None}}) == [
        "unknown field 3 at the top level (known fields: " + ", ".join(MODEL_SCHEMA[""]) + ")"]


def test_bundle_fields() -> None:
    assert unknown_bundle_field_warnings({"name": "b", "adapter": []}) == [
        "unknown field 'adapter' at the top level; did you mean 'adapters'?"]
    assert known_field_paths(BUNDLE_SCHEMA) == ["name", "priority", "default", "adapters"]


def test_the_shipped_catalog_uses_only_known_fields() -> None:
    for path in sorted((ROOT / "models").glob("*.yaml")):
        assert unknown_field_warnings(yaml.safe_load(path.read_text())) == [], path
    for path in sorted((ROOT / "bundles").glob("*.yaml")):
        assert unknown_bundle_field_warnings(yaml.safe_load(path.read_text())) == [], path

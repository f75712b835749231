"""Model-id rules (reference §2.2 plus CONTRACT's fixes) and store file names."""

from __future__ import annotations

import pytest

from sie_actors.domain.errors import InvalidModelId
from sie_actors.domain.ids import (
    canonical_lower,
    model_id_from_stem,
    store_file_stem,
    validate_model_id,
)

INVALID_CHARS = "Model ID contains invalid characters."
STATUS = "Model ID must not end with '/status' (reserved for the gateway status endpoint)."


@pytest.mark.parametrize(
    "model_id",
    ["BAAI/bge-m3", "a", "0x/y.z_w-1", "docling", "org/sub/model", "A/status-page", "statuses"],
)
def test_accepted(model_id: str) -> None:
    assert validate_model_id(model_id) == model_id


@pytest.mark.parametrize(
    "model_id",
    [
        "",
        "/lead",
        "-lead",
        ".lead",
        "_lead",
        "a b",
        "a:b",
        "a@b",
        "a/../b",
        "a..b",
        "a\\b",
        "abc\n",
        "é/model",
        "a\x00b",
    ],
)
def test_invalid_characters(model_id: str) -> None:
    with pytest.raises(InvalidModelId) as info:
        validate_model_id(model_id)
    assert info.value.message == INVALID_CHARS
    assert info.value.status == 400


@pytest.mark.parametrize("model_id", ["status", "foo/status", "a/b/status"])
def test_status_suffix_reserved(model_id: str) -> None:
    with pytest.raises(InvalidModelId) as info:
        validate_model_id(model_id)
    assert info.value.message == STATUS


@pytest.mark.parametrize("model_id", ["org__model", "a/b__c", "a/__b", "x__"])
def test_double_underscore_rejected(model_id: str) -> None:
    with pytest.raises(InvalidModelId) as info:
        validate_model_id(model_id)
    assert "__" in info.value.message
    assert info.value.detail()["error"] == "invalid_model_id"


@pytest.mark.parametrize("value", [123, 1.5, True, ["a"], {"a": 1}, None, b"abc"])
def test_non_string_rejected(value: object) -> None:
    with pytest.raises(InvalidModelId) as info:
        validate_model_id(value)
    assert "string" in info.value.message


def test_store_stems_round_trip() -> None:
    assert store_file_stem("BAAI/bge-m3") == "BAAI__bge-m3"
    assert store_file_stem("a/b/c") == "a__b__c"
    assert model_id_from_stem("BAAI__bge-m3") == "BAAI/bge-m3"
    assert model_id_from_stem(store_file_stem("org/sub/m")) == "org/sub/m"


def test_canonical_lower() -> None:
    assert canonical_lower("TEST/Model") == canonical_lower("test/model") == "test/model"


def test_underscore_before_slash_is_refused():
    """`a_/b` and `a/_b` would share a store file; only the one that reads back is allowed."""
    with pytest.raises(InvalidModelId, match="ambiguous"):
        validate_model_id("org_/model")
    assert validate_model_id("org/_model") == "org/_model"
    assert model_id_from_stem(store_file_stem("org/_model")) == "org/_model"

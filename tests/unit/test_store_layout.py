"""File naming of the store: wire-compatible model names and defensive id checks."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sie_actors.store import layout


def test_model_path_maps_slashes_like_the_original() -> None:
    assert layout.model_path("org/model") == "models/org__model.yaml"
    assert layout.model_path("a/b/c-1.5") == "models/a__b__c-1.5.yaml"
    assert layout.model_path("plain") == "models/plain.yaml"


def test_file_names_map_back_to_ids() -> None:
    assert layout.model_id_from_file_name("org__model.yaml") == "org/model"
    assert layout.model_id_from_file_name("plain.yaml") == "plain"


@pytest.mark.parametrize(
    "name",
    [".org__m.yaml.abc123.tmp", ".hidden.yaml", "notes.txt", "x.yml", ".yaml", "epoch"],
)
def test_non_model_file_names_are_ignored(name: str) -> None:
    assert layout.model_id_from_file_name(name) is None


@pytest.mark.parametrize(
    "bad",
    ["", "org__m", "a/../b", "..", "/abs", "a\\b", "a\x00b", "a_/b", "x_//y"],
)
def test_unsafe_or_ambiguous_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        layout.model_path(bad)


def test_non_string_id_is_refused() -> None:
    with pytest.raises(ValueError):
        layout.check_model_id(123)  # type: ignore[arg-type]


@given(st.text(alphabet="abZ09._/-", min_size=1, max_size=24))
def test_every_accepted_id_round_trips(model_id: str) -> None:
    # Two ids sharing one file would silently merge models; refusing is the only other answer.
    try:
        path = layout.model_path(model_id)
    except ValueError:
        return
    file_name = path.removeprefix("models/")
    assert "/" not in file_name
    assert layout.model_id_from_file_name(file_name) == model_id


def test_idempotency_path_is_sha256_of_the_key() -> None:
    key = "client/key with spaces ☃"
    expected = hashlib.sha256(key.encode("utf-8")).hexdigest()
    assert layout.idempotency_path(key) == f"idempotency/{expected}.json"


def test_idempotency_path_accepts_any_string() -> None:
    path = layout.idempotency_path("\ud800lone-surrogate")
    assert path.startswith("idempotency/") and path.endswith(".json")
    assert len(path) == len("idempotency/") + 64 + len(".json")


def test_temp_and_record_names_are_told_apart() -> None:
    assert layout.is_temp_file_name(".abc.json.x1y2.tmp")
    assert not layout.is_temp_file_name("abc.json")
    assert layout.is_idempotency_file_name("abc.json")
    assert not layout.is_idempotency_file_name(".abc.json.x1y2.tmp")

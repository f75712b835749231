"""Parsing model documents and the write-path shape rules (reference §2.3 rules 1-4)."""

from __future__ import annotations

import pytest
import yaml

from sie_actors.domain.errors import InvalidModelId, ParseError, ValidationFailed
from sie_actors.domain.model_config import (
    adapter_module,
    canonical_profile,
    dump_model_yaml,
    ensure_json_compatible,
    parse_model_yaml,
    read_filesystem_model,
    validate_model_config,
)

BERT = "sie_server.adapters.bert_flash:BertFlashAdapter"


def test_parse_mapping_from_bytes_and_text() -> None:
    body = "sie_id: a/b\nprofiles:\n  default:\n    adapter_path: x:Y\n"
    assert parse_model_yaml(body.encode()) == parse_model_yaml(body)
    assert parse_model_yaml(body)["sie_id"] == "a/b"


def test_parse_json_body_is_yaml() -> None:
    assert parse_model_yaml(b'{"sie_id": "a/b", "profiles": {}}') == {
        "sie_id": "a/b",
        "profiles": {},
    }


def test_parse_invalid_yaml() -> None:
    with pytest.raises(ParseError) as info:
        parse_model_yaml(b"sie_id: [unclosed")
    assert info.value.message.startswith("Invalid YAML: ")
    assert info.value.status == 400


@pytest.mark.parametrize("body", [b"", b"   \n", b"- a\n- b\n", b"42", b"just text", b"null"])
def test_parse_non_mapping(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_model_yaml(body)
    assert info.value.message == "Expected YAML mapping at top level"


@pytest.mark.parametrize("body", [b"\xff\xfe", b"sie_id: caf\xe9\n", b"\xc3"])
def test_parse_invalid_utf8_is_a_400(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_model_yaml(body)
    assert "UTF-8" in info.value.message
    assert info.value.detail()["error"] == "parse_error"


def test_adapter_module() -> None:
    assert adapter_module(BERT) == "sie_server.adapters.bert_flash"
    assert adapter_module("plain.module") == "plain.module"
    assert adapter_module("a:b:c") == "a"


def test_canonical_profile_is_four_raw_fields() -> None:
    profile = {"adapter_path": BERT, "extends": "x", "adapter_options": {}, "extra": 1}
    assert canonical_profile(profile) == {
        "adapter_path": BERT,
        "max_batch_tokens": None,
        "compute_precision": None,
        "adapter_options": {},
    }


def _fail(config: object) -> str:
    with pytest.raises(ValidationFailed) as info:
        validate_model_config(config)
    assert info.value.status == 422
    assert info.value.detail()["details"] == [{"message": info.value.message}]
    return info.value.message


@pytest.mark.parametrize("sie_id", [None, "", 0, False, [], {}])
def test_rule1_missing_sie_id(sie_id: object) -> None:
    config = {"profiles": {"default": {"adapter_path": BERT}}}
    if sie_id is not None:
        config["sie_id"] = sie_id
    assert _fail(config) == "Missing required field: sie_id"


@pytest.mark.parametrize("profiles", ["missing", None, {}, [], "", 0])
def test_rule2_missing_profiles(profiles: object) -> None:
    config: dict = {"sie_id": "a/b"}
    if profiles != "missing":
        config["profiles"] = profiles
    assert _fail(config) == "Missing required field: profiles"


@pytest.mark.parametrize("profiles", [["default"], "text", 5, True])
def test_rule3_profiles_not_mapping(profiles: object) -> None:
    assert _fail({"sie_id": "a/b", "profiles": profiles}) == (
        "Field 'profiles' must be a mapping of profile_name -> profile_config"
    )


@pytest.mark.parametrize("profile", [None, "x", ["a"], 3])
def test_rule4_profile_not_mapping(profile: object) -> None:
    config = {"sie_id": "a/b", "profiles": {"ok": {"adapter_path": BERT}, "bad": profile}}
    assert _fail(config) == "Profile 'bad' must be a mapping"


@pytest.mark.parametrize(
    "profile", [{}, {"adapter_path": ""}, {"adapter_path": None, "extends": ""}, {"x": 1}]
)
def test_rule4_missing_adapter_path(profile: dict) -> None:
    config = {"sie_id": "a/b", "profiles": {"p": profile}}
    assert _fail(config) == "Profile 'p' missing adapter_path"


def test_rule4_extends_only_is_accepted() -> None:
    config = {"sie_id": "a/b", "profiles": {"d": {"adapter_path": BERT}, "e": {"extends": "d"}}}
    validated = validate_model_config(config)
    assert validated.modules == {"d": "sie_server.adapters.bert_flash", "e": None}
    assert validated.module_set() == {"sie_server.adapters.bert_flash"}


@pytest.mark.parametrize("path", [5, 1.5, True, ["a:b"], {"a": "b"}])
def test_non_string_adapter_path_is_a_422(path: object) -> None:
    message = _fail({"sie_id": "a/b", "profiles": {"p": {"adapter_path": path}}})
    assert message.startswith("Profile 'p' adapter_path must be a string")


@pytest.mark.parametrize("name", [1, None, True, 2.5])
def test_non_string_profile_name_is_a_422(name: object) -> None:
    message = _fail({"sie_id": "a/b", "profiles": {name: {"adapter_path": BERT}}})
    assert message == f"Profile name {name!r} must be a string"


@pytest.mark.parametrize("sie_id", [123, 1.5, ["a"], {"a": 1}, True])
def test_truthy_non_string_sie_id_is_a_400(sie_id: object) -> None:
    with pytest.raises(InvalidModelId):
        validate_model_config({"sie_id": sie_id, "profiles": {"p": {"adapter_path": BERT}}})


@pytest.mark.parametrize("sie_id", ["org__model", "a/status", "bad id"])
def test_id_rules_come_before_422_rules(sie_id: str) -> None:
    with pytest.raises(InvalidModelId):
        validate_model_config({"sie_id": sie_id})


def test_non_mapping_config_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        validate_model_config(["sie_id"])


def test_filesystem_rules_are_lenient() -> None:
    model = read_filesystem_model({"name": "x/y", "profiles": {"p": {"max_batch_tokens": 1}}})
    assert model.model_id == "x/y"
    assert model.modules == {"p": None}
    assert read_filesystem_model({"sie_id": "x/y"}).profiles == {}
    with pytest.raises(ValidationFailed):
        read_filesystem_model({"profiles": {}})
    with pytest.raises(InvalidModelId):
        read_filesystem_model({"sie_id": 5})
    with pytest.raises(ValidationFailed):
        read_filesystem_model({"sie_id": "x", "profiles": ["a"]})
    with pytest.raises(ValidationFailed):
        read_filesystem_model({"sie_id": "x", "profiles": {"p": "not a mapping"}})


@pytest.mark.parametrize(
    "value", [{1, 2}, b"bytes", {1: "int key"}, 2**70, {"nested": [{"k": {3: 4}}]}]
)
def test_json_incompatible_documents_are_a_422(value: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        ensure_json_compatible({"sie_id": "a/b", "extra": value})
    assert "JSON" in info.value.message


def _alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_a_parse_error() -> None:
    with pytest.raises(ParseError) as info:
        parse_model_yaml(_alias_bomb(8))
    assert "aliases" in info.value.message


def test_modest_aliases_are_fine() -> None:
    assert len(parse_model_yaml(_alias_bomb(2))["l2"]) == 10


def test_deep_nesting_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_model_yaml("x: " + "[" * 5000 + "]" * 5000)


def test_dump_model_yaml_keeps_key_order_and_round_trips() -> None:
    config = {
        "sie_id": "pub/model",
        "profiles": {"default": {"max_batch_tokens": 7, "adapter_path": "m:B"}},
        "hf_id": "x",
    }
    text = dump_model_yaml(config)
    assert text == (
        "sie_id: pub/model\nprofiles:\n  default:\n    max_batch_tokens: 7\n"
        "    adapter_path: m:B\nhf_id: x\n"
    )
    assert yaml.safe_load(text) == config

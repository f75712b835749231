"""Resolve (reference §1.8, §3.3) with CONTRACT's fixes: no 500s, one rule for case."""

from __future__ import annotations

import pytest

from sie_actors.domain.bundle import Bundle
from sie_actors.domain.errors import (
    BundleConflict,
    DomainError,
    InvalidModelSpec,
    InvalidRequest,
    MissingField,
    ModelNotFound,
    ParseError,
)
from sie_actors.domain.registry import Registry
from sie_actors.domain.resolve import parse_model_spec, resolve

M3 = "sie_server.adapters.bge_m3_flash"
SGL = "sie_server.adapters.sglang"


@pytest.fixture(scope="module")
def registry() -> Registry:
    bundles = [Bundle("default", 10, (M3,)), Bundle("sglang", 20, (SGL, M3))]
    return Registry.build(
        bundles,
        [
            {"sie_id": "BAAI/bge-m3",
             "profiles": {"sparse": {"extends": "default"},
                          "default": {"adapter_path": f"{M3}:A"}}},
            {"sie_id": "lost/model", "profiles": {"d": {"adapter_path": "gone:A"}}},
        ],
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("BAAI/bge-m3", (None, "BAAI/bge-m3")),
        ("default:/BAAI/bge-m3", ("default", "BAAI/bge-m3")),
        ("DEFAULT:/BAAI/bge-m3", ("default", "BAAI/bge-m3")),
        ("BAAI/bge-m3:FlagEmbedding", (None, "BAAI/bge-m3:FlagEmbedding")),
        ("b:/org/m:variant", ("b", "org/m:variant")),
        ("a:/b:/c", ("a", "b:/c")),
        (" x ", (None, " x ")),
    ],
)
def test_parse_model_spec(spec: str, expected: tuple) -> None:
    assert parse_model_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "model_spec must not be empty"),
        ("   ", "model_spec must not be empty"),
        (":/x", "Bundle part of model_spec must not be empty"),
        ("default:/", "Model part of model_spec must not be empty"),
    ],
)
def test_parse_model_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidModelSpec) as info:
        parse_model_spec(spec)
    assert info.value.message == message
    assert info.value.status == 400


def test_resolve_success(registry: Registry) -> None:
    assert resolve(registry, {"model": "BAAI/bge-m3"}) == {
        "model": "BAAI/bge-m3",
        "resolved_bundle": "default",
        "compatible_bundles": ["default", "sglang"],
        "profiles": ["default", "sparse"],
    }


def test_resolve_from_raw_json(registry: Registry) -> None:
    body = b'{"model": "BAAI/bge-m3", "bundle": "sglang"}'
    assert resolve(registry, body)["resolved_bundle"] == "sglang"
    assert resolve(registry, body.decode())["resolved_bundle"] == "sglang"


def test_case_variant_gets_real_profiles_and_echoes_name(registry: Registry) -> None:
    result = resolve(registry, {"model": "baai/BGE-M3"})
    assert result["model"] == "baai/BGE-M3"
    assert result["profiles"] == ["default", "sparse"]


def test_spec_prefix_overrides_body_bundle(registry: Registry) -> None:
    result = resolve(registry, {"model": "SGLANG:/BAAI/bge-m3", "bundle": "default"})
    assert result["resolved_bundle"] == "sglang"


def test_falsy_bundle_means_no_override(registry: Registry) -> None:
    assert resolve(registry, {"model": "BAAI/bge-m3", "bundle": None})["resolved_bundle"] == "default"
    assert resolve(registry, {"model": "BAAI/bge-m3", "bundle": ""})["resolved_bundle"] == "default"


def test_body_bundle_is_exact_case(registry: Registry) -> None:
    with pytest.raises(BundleConflict) as info:
        resolve(registry, {"model": "BAAI/bge-m3", "bundle": "DEFAULT"})
    assert info.value.status == 409
    assert info.value.detail() == {
        "error": "bundle_conflict",
        "message": "Bundle 'DEFAULT' does not support model 'BAAI/bge-m3'. "
        "Compatible bundles: ['default', 'sglang']",
        "model": "BAAI/bge-m3",
        "bundle": "DEFAULT",
        "compatible_bundles": ["default", "sglang"],
    }


@pytest.mark.parametrize("name", ["nope/model", "lost/model", "BAAI/bge-m3:FlagEmbedding"])
def test_unknown_or_unrouted_model_is_404(registry: Registry, name: str) -> None:
    with pytest.raises(ModelNotFound) as info:
        resolve(registry, {"model": name})
    assert info.value.detail() == {
        "error": "model_not_found",
        "message": f"Model not found: {name}",
        "model": name,
    }


@pytest.mark.parametrize("body", [{}, {"model": ""}, {"model": None}, {"model": 0}, b"", ""])
def test_missing_model(registry: Registry, body: object) -> None:
    with pytest.raises(MissingField) as info:
        resolve(registry, body)
    assert info.value.message == "'model' field is required"


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", "[1,"])
def test_invalid_json(registry: Registry, body: object) -> None:
    with pytest.raises(ParseError) as info:
        resolve(registry, body)
    assert info.value.message.startswith("Invalid JSON: ")


@pytest.mark.parametrize("body", [[1], b"[1]", b'"text"', b"5", b"null", 3, None])
def test_non_object_body_is_a_400(registry: Registry, body: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve(registry, body)
    assert info.value.status == 400
    assert "JSON object" in info.value.message


@pytest.mark.parametrize("model", [5, ["a"], {"a": 1}, True])
def test_non_string_model_is_a_400(registry: Registry, model: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        resolve(registry, {"model": model})
    assert "'model' must be a string" in info.value.message


@pytest.mark.parametrize("bundle", [5, ["default"], True])
def test_non_string_bundle_is_a_400(registry: Registry, bundle: object) -> None:
    with pytest.raises(InvalidRequest):
        resolve(registry, {"model": "BAAI/bge-m3", "bundle": bundle})


def test_spec_errors_surface(registry: Registry) -> None:
    for spec in ("  ", ":/BAAI/bge-m3", "default:/"):
        with pytest.raises(InvalidModelSpec):
            resolve(registry, {"model": spec})


def test_every_failure_is_a_domain_error(registry: Registry) -> None:
    for body in ({"model": "x"}, [1], b"{", {"model": 1.5}):
        with pytest.raises(DomainError):
            resolve(registry, body)

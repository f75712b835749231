"""Every domain error knows its status and code and carries both ``error`` and ``message``."""

from __future__ import annotations

import pytest

from sie_actors.domain.errors import (
    BundleConflict,
    BundleNotFound,
    ContentConflict,
    DomainError,
    InvalidModelId,
    InvalidModelSpec,
    InvalidRequest,
    MissingField,
    ModelNotFound,
    ParseError,
    ValidationFailed,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ParseError("x"), 400, "parse_error"),
        (InvalidRequest("x"), 400, "invalid_request"),
        (InvalidModelId("x"), 400, "invalid_model_id"),
        (InvalidModelSpec("x"), 400, "invalid_model_spec"),
        (MissingField("model"), 400, "missing_field"),
        (ValidationFailed("x"), 422, "validation_error"),
        (ContentConflict.profiles("m", ["a"]), 409, "content_conflict"),
        (ContentConflict.fields("m", ["a"]), 409, "content_conflict"),
        (ModelNotFound("m"), 404, "model_not_found"),
        (BundleNotFound("b"), 404, "bundle_not_found"),
        (BundleConflict("m", "b", ["default"]), 409, "bundle_conflict"),
    ],
)
def test_status_code_and_detail_shape(error: DomainError, status: int, code: str) -> None:
    assert isinstance(error, DomainError)
    assert error.status == status
    assert error.code == code
    detail = error.detail()
    assert detail["error"] == code
    assert isinstance(detail["message"], str) and detail["message"]
    assert detail["message"] == error.message == str(error)


def test_validation_failed_has_one_details_item() -> None:
    assert ValidationFailed("Missing required field: sie_id").detail() == {
        "error": "validation_error",
        "message": "Missing required field: sie_id",
        "details": [{"message": "Missing required field: sie_id"}],
    }


def test_missing_field_message() -> None:
    assert MissingField("model").detail() == {
        "error": "missing_field",
        "message": "'model' field is required",
    }


def test_model_not_found_catalog_shape() -> None:
    assert ModelNotFound("a/b").detail() == {
        "error": "model_not_found",
        "message": "Model 'a/b' does not exist in the catalog.",
        "model_id": "a/b",
    }


def test_model_not_found_resolve_shape() -> None:
    expected = {"error": "model_not_found", "message": "Model not found: a/b", "model": "a/b"}
    assert ModelNotFound("a/b", key="model").detail() == expected
    assert ModelNotFound.for_resolve("a/b").detail() == expected


def test_bundle_errors() -> None:
    assert BundleNotFound("DEFAULT").detail()["bundle_id"] == "DEFAULT"
    detail = BundleConflict("BAAI/bge-m3", "sglang", ("default",)).detail()
    assert detail == {
        "error": "bundle_conflict",
        "message": "Bundle 'sglang' does not support model 'BAAI/bge-m3'. "
        "Compatible bundles: ['default']",
        "model": "BAAI/bge-m3",
        "bundle": "sglang",
        "compatible_bundles": ["default"],
    }


def test_content_conflict_messages() -> None:
    profiles = ContentConflict.profiles("a/b", ["default", "x"]).detail()
    assert profiles["model_id"] == "a/b"
    assert profiles["conflicting_profiles"] == ["default", "x"]
    assert profiles["message"] == (
        "Profile(s) ['default', 'x'] exist with different content. Config API is append-only."
    )
    fields = ContentConflict.fields("a/b", ["tasks", "hf_id"]).detail()
    assert fields["conflicting_fields"] == ["hf_id", "tasks"]
    assert fields["message"] == (
        "Top-level field(s) ['hf_id', 'tasks'] already exist with different values. Config "
        "API is append-only; mutating existing metadata is not supported via this endpoint."
    )

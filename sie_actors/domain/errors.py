"""Domain errors: each one already knows its HTTP status, wire code and message.

Handlers in every service render ``{"detail": err.detail()}`` with ``err.status`` and never
have to translate exceptions themselves, so an error looks the same whichever service raised
it. Every detail carries both ``error`` and ``message`` (the original omitted ``message`` in
places; CONTRACT §2 asks for both).
"""

from __future__ import annotations

from typing import Any, Iterable


class DomainError(Exception):
    """Base of every error the pure domain raises on bad input.

    Callers may rely on the domain raising nothing else for any input, so a handler that
    catches ``DomainError`` can never leak a 500.
    """

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, Any] = dict(extra)

    def detail(self) -> dict[str, Any]:
        """The JSON object that goes under ``detail`` in an HTTP error body."""
        return {"error": self.code, "message": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"


class ParseError(DomainError):
    """The body (YAML, JSON, UTF-8) could not be read at all."""

    status = 400
    code = "parse_error"


class DocumentTooComplex(ParseError):
    """A document over the node budget, before or after YAML aliases are expanded.

    413 like an oversized body: the limit is on how much work reading it costs, not on its
    shape (docs/security.md lists the limits).
    """

    status = 413
    code = "yaml_too_complex"


class InvalidRequest(DomainError):
    """Well-formed but of the wrong shape (e.g. a resolve body that is not an object).

    The original let these reach a 500; CONTRACT §2 item 5 wants a clear 400 instead.
    """

    status = 400
    code = "invalid_request"


class InvalidModelId(DomainError):
    """A model id that breaks the id rules (``ids.validate_model_id``)."""

    status = 400
    code = "invalid_model_id"


class InvalidModelSpec(DomainError):
    """A resolve ``model`` spec with an empty bundle or model part."""

    status = 400
    code = "invalid_model_spec"


class MissingField(DomainError):
    """A required request field is absent or empty."""

    status = 400
    code = "missing_field"

    def __init__(self, field: str, message: str | None = None) -> None:
        super().__init__(message or f"'{field}' field is required")
        self.field = field


class ValidationFailed(DomainError):
    """A model config the registry refuses (422); always exactly one ``details`` item."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, details=[{"message": message}])


class ContentConflict(DomainError):
    """An append that would silently change stored content (append-only violation)."""

    status = 409
    code = "content_conflict"

    @classmethod
    def profiles(cls, model_id: str, names: Iterable[str]) -> ContentConflict:
        """A pure replay whose raw profiles differ from the stored document."""
        names = list(names)
        return cls(
            f"Profile(s) {names!r} exist with different content. Config API is append-only.",
            model_id=model_id,
            conflicting_profiles=names,
        )

    @classmethod
    def fields(cls, model_id: str, names: Iterable[str]) -> ContentConflict:
        """A creating write whose top-level metadata differs from the stored document."""
        names = sorted(names)
        return cls(
            f"Top-level field(s) {names!r} already exist with different values. "
            "Config API is append-only; mutating existing metadata is not supported via "
            "this endpoint.",
            model_id=model_id,
            conflicting_fields=names,
        )


class ModelNotFound(DomainError):
    """An unknown model.

    The original names the id ``model_id`` on the model endpoints and ``model`` on resolve,
    with different texts; ``key`` picks which shape to produce so both stay wire-compatible.
    """

    status = 404
    code = "model_not_found"

    def __init__(self, model_id: str, *, key: str = "model_id", message: str | None = None) -> None:
        if message is None:
            if key == "model":
                message = f"Model not found: {model_id}"
            else:
                message = f"Model '{model_id}' does not exist in the catalog."
        super().__init__(message, **{key: model_id})
        self.model_id = model_id

    @classmethod
    def for_resolve(cls, model: str) -> ModelNotFound:
        """The shape of ``POST /v1/configs/resolve``."""
        return cls(model, key="model")


class BundleNotFound(DomainError):
    """An unknown bundle id (bundle ids are exact-case)."""

    status = 404
    code = "bundle_not_found"

    def __init__(self, bundle_id: str) -> None:
        super().__init__(f"Bundle '{bundle_id}' does not exist.", bundle_id=bundle_id)
        self.bundle_id = bundle_id


class BundleConflict(DomainError):
    """A resolve override naming a bundle that cannot serve the model."""

    status = 409
    code = "bundle_conflict"

    def __init__(self, model: str, bundle: str, compatible_bundles: Iterable[str]) -> None:
        compatible = list(compatible_bundles)
        super().__init__(
            f"Bundle '{bundle}' does not support model '{model}'. "
            f"Compatible bundles: {compatible!r}",
            model=model,
            bundle=bundle,
            compatible_bundles=compatible,
        )


class DeltasGone(DomainError):
    """sie-config's delta log cannot answer "what changed since epoch N" (N before what it keeps,
    of another generation, or ahead of it): the mirror takes a snapshot instead."""

    status = 410
    code = "deltas_gone"

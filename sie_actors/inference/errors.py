"""Inference errors, carrying the original's error codes and HTTP statuses.

They subclass ``DomainError`` so every service renders them the one way
(``{"detail": {"error": code, "message": ...}}``); the codes are the reference's upper-case
``ErrorCode`` values because clients of the original branch on them.
"""

from __future__ import annotations

from sie_actors.domain.errors import DomainError


class InferenceError(DomainError):
    """Base of the inference-path errors; ``retry_after`` is seconds or ``None`` (terminal)."""

    status = 500
    code = "INFERENCE_ERROR"
    retry_after: int | None = None


class InvalidInput(InferenceError):
    """A request body the encode route cannot accept."""

    status = 400
    code = "INVALID_INPUT"


class PayloadTooLarge(InferenceError):
    """An item (or the body) over the inline limit; the payload-store offload is not built yet."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ModelLoadFailed(InferenceError):
    """The model cannot be loaded here (weights nowhere, unsupported architecture, bad files).

    Terminal: a 502 without ``Retry-After``, because retrying cannot make the weights appear.
    """

    status = 502
    code = "MODEL_LOAD_FAILED"


class ModelLoading(InferenceError):
    """The model is being loaded; the caller should come back shortly."""

    status = 503
    code = "MODEL_LOADING"
    retry_after = 5

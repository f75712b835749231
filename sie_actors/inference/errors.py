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


class InferenceFailed(InferenceError):
    """The adapter raised while encoding; ``inference_error`` is the original's (lowercase,
    legacy) code for this on the queue path, kept because its gateway passes it through."""

    status = 500
    code = "inference_error"


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


class QueueFull(InferenceError):
    """The model host already holds as many batches as it may; come back in a moment.

    Bounding the queue keeps memory flat and tells the pull loop to NAK with a delay (so another
    worker of the pool can take the items) instead of piling them up here."""

    status = 503
    code = "QUEUE_FULL"
    retry_after = 1


class ModelUnloaded(InferenceError):
    """The model host was closed while the batch waited (eviction or shutdown); retryable."""

    status = 503
    code = "MODEL_NOT_LOADED"
    retry_after = 5

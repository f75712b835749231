"""Exceptions of the store layer.

The HTTP layer needs one type to turn into ``503 store_unavailable`` without knowing which
backend (local disk, memory, object store) produced the failure, so every backend error is
funnelled into :class:`StoreUnavailable` with the original exception chained for the logs.
"""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store could not perform a write, or a read whose answer the caller relies on.

    Raised instead of backend-specific errors so that callers can refuse the request (503)
    rather than crash; ``__cause__`` keeps the underlying error for diagnosis.
    """


class StoreBackendMissing(ImportError):
    """The URL names a backend whose optional package (s3fs, gcsfs, ...) is not installed.

    A subclass of ImportError because it is a deployment mistake, not a transient outage:
    start-up should fail loudly instead of answering 503 forever.
    """

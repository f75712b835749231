"""Idempotency keys derived from the file being added.

Deriving the key from the exact bytes makes a retried `sie models add` of the same file a replay
(sie-config answers with the first response, no new epoch), while an edited file gets a new key
instead of a confusing `idempotency_mismatch`.
"""

from __future__ import annotations

import hashlib

PREFIX = "sie-add-"
HEX_CHARS = 32


def derive_idempotency_key(body: bytes) -> str:
    """`sie-add-` + the first 32 hex digits of sha256(body): stable, short, content-addressed."""
    return PREFIX + hashlib.sha256(body).hexdigest()[:HEX_CHARS]

"""Encoding of persisted idempotency records and their expiry rule.

The key is stored next to the record because the file name is only its hash: checking it on
read turns a (theoretical) hash collision or a misplaced file into a miss instead of a replay
of someone else's response.
"""

from __future__ import annotations

import json
import math
from typing import Any

FORMAT_VERSION = 1


def encode_record(key: str, record: dict[str, Any], stored_at: float) -> bytes:
    """JSON document of one successful outcome; raises TypeError if ``record`` is not JSON."""
    if not isinstance(record, dict):
        raise TypeError("idempotency record must be a dict")
    document = {"v": FORMAT_VERSION, "key": key, "stored_at": stored_at, "record": record}
    # ASCII-escaped, so keys with lone surrogates (any client string) still encode.
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def decode_record(data: bytes) -> tuple[str, float, dict[str, Any]] | None:
    """(key, stored_at, record), or None when the file is not a record we wrote."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    key = document.get("key")
    stored_at = document.get("stored_at")
    record = document.get("record")
    if not isinstance(key, str) or not isinstance(record, dict):
        return None
    if isinstance(stored_at, bool) or not isinstance(stored_at, (int, float)):
        return None
    if not math.isfinite(stored_at):
        return None
    return key, float(stored_at), record


def is_expired(stored_at: float, now: float, ttl_seconds: float) -> bool:
    """A record lives for ``ttl_seconds``; a ttl of 0 or less means nothing is kept.

    A ``stored_at`` in the future (clock stepped back) counts as fresh rather than expired:
    forgetting a key early risks applying a retried write twice, keeping it longer does not.
    """
    return now - stored_at >= ttl_seconds

"""JSON bytes in and out: reading a JSON object from a peer, and right-sized cached output.

Every body we read from another service (an export, an epoch report, a status frame, an
announcement) must be a JSON object; `load_object` is the one place that says so, with the same
ParseError wording everywhere.

Right-sized copies of orjson output that is kept for a long time:

orjson (3.12 and later) returns a `bytes` whose allocation is rounded up far beyond its length
(about 4 KiB for a 300-byte result, 8-16 KiB for 1-2 KiB) and never shrinks it; `sys.getsizeof`
does not show the slack, tracemalloc does. Bytes that live as long as a snapshot, once per model
(hash fragments, export entries), are therefore copied to their exact size: with 10,000 models
that slack was about 115 MiB of sie-config's resident memory. Short-lived results (response
bodies, messages) do not need it.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from .errors import ParseError


def load_object(body: bytes | str | Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """`body` decoded as a JSON object (a mapping passes through), or ParseError naming `what`."""
    if isinstance(body, Mapping):
        return body
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ParseError(f"{what} must be a JSON object")
    return value


def kept(data: bytes) -> bytes:
    """An exact-size copy of `data` (one memcpy; `bytes(data)` would return the same object)."""
    return bytes(memoryview(data))


def dumps_kept(value: Any, option: int | None = None) -> bytes:
    """`orjson.dumps` for a result that will be cached."""
    return kept(orjson.dumps(value, option=option))

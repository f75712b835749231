"""Right-sized copies of orjson output that is kept for a long time.

orjson (3.12 and later) returns a `bytes` whose allocation is rounded up far beyond its length
(about 4 KiB for a 300-byte result, 8-16 KiB for 1-2 KiB) and never shrinks it; `sys.getsizeof`
does not show the slack, tracemalloc does. Bytes that live as long as a snapshot, once per model
(hash fragments, export entries), are therefore copied to their exact size: with 10,000 models
that slack was about 115 MiB of sie-config's resident memory. Short-lived results (response
bodies, messages) do not need it.
"""

from __future__ import annotations

from typing import Any

import orjson


def kept(data: bytes) -> bytes:
    """An exact-size copy of `data` (one memcpy; `bytes(data)` would return the same object)."""
    return bytes(memoryview(data))


def dumps_kept(value: Any, option: int | None = None) -> bytes:
    """`orjson.dumps` for a result that will be cached."""
    return kept(orjson.dumps(value, option=option))

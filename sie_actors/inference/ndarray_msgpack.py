"""numpy arrays inside msgpack, byte-for-byte as ``msgpack_numpy`` writes them.

The original's workers pack results with ``msgpack_numpy`` and its clients unpack with it, so an
array must be the map ``{b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [...], b"data":
<bin>}`` with *bin* (bytes) keys: a client's ``msgpack_numpy.decode`` looks for ``b"nd"`` and
would leave a str-keyed map undecoded. We write these ~20 lines instead of depending on
``msgpack_numpy`` because that package works by patching msgpack globally and has had no
release since 2022; a test checks our bytes against it.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "V":
            raise TypeError("structured numpy arrays are not supported on the wire")
        array = np.ascontiguousarray(obj)
        return {b"nd": True, b"type": array.dtype.str, b"kind": b"",
                b"shape": list(array.shape), b"data": array.tobytes()}
    if isinstance(obj, (np.bool_, np.number)):
        return {b"nd": False, b"type": obj.dtype.str, b"data": obj.tobytes()}
    raise TypeError(f"cannot pack {type(obj).__name__}")


def _get(obj: dict, key: str) -> Any:
    return obj[key.encode()] if key.encode() in obj else obj.get(key)


def _object_hook(obj: dict) -> Any:
    nd = _get(obj, "nd")
    if nd is True and _get(obj, "data") is not None:
        return np.frombuffer(_get(obj, "data"), dtype=np.dtype(_get(obj, "type"))).reshape(
            _get(obj, "shape"))
    if nd is False and _get(obj, "data") is not None:
        return np.frombuffer(_get(obj, "data"), dtype=np.dtype(_get(obj, "type")))[0]
    return obj


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Arrays come back as (read-only) numpy arrays; str or bytes keys are both accepted."""
    return msgpack.unpackb(data, raw=False, object_hook=_object_hook, strict_map_key=False)

"""``POST /v1/encode/{model}``: request bodies in, response bodies out, as pure functions.

Shapes are the original's: ``{"items": [{"text", "id"?}], "params"?: {"output_types",
"instruction", "is_query", "options": {"is_query", ...}}}`` in, ``{"model", "items": [{"dense":
{"dims", "dtype", "values"}}]}`` out, as JSON or msgpack (arrays as ``msgpack_numpy`` maps). Like
the original gateway, items may also come as ``input`` (a scalar is one item) or ``inputs``, and
``params`` keys fall back to top-level keys. Every way a body can be wrong is a 4xx here, so the
route never turns bad input into a 500 or a hang.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import msgpack
import numpy as np
import orjson

from . import ndarray_msgpack
from .errors import InvalidInput, PayloadTooLarge

MAX_ITEM_BYTES = 1 << 20          # larger items would need the payload store (not built yet)
MAX_ITEMS = 1024
MAX_BODY_BYTES = 32 << 20
OUTPUT_TYPES = ("dense", "sparse", "multivector")
MSGPACK = "application/msgpack"
JSON = "application/json"


@dataclass(frozen=True)
class EncodeRequest:
    items: list[dict[str, Any]]
    output_types: list[str] | None = None
    instruction: str | None = None
    is_query: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def is_msgpack(content_type: str | None) -> bool:
    return "msgpack" in (content_type or "").lower()


def wants_msgpack(accept: str | None, content_type: str | None) -> bool:
    """msgpack if ``Accept`` names it; JSON if ``Accept`` names JSON only; otherwise answer in
    the request's own format (so a plain ``curl -d '{...}'`` gets JSON back)."""
    text = (accept or "").lower()
    if "msgpack" in text:
        return True
    if "json" in text:
        return False
    return is_msgpack(content_type)


def decode_body(body: bytes, content_type: str | None) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    if not body:
        raise InvalidInput("request body is empty; expected an object with 'items'")
    if is_msgpack(content_type):
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception as exc:
            raise InvalidInput(f"body is not valid msgpack: {type(exc).__name__}") from None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("body is nested too deeply") from None


def _raw_items(body: Mapping[str, Any]) -> Any:
    if "items" in body:
        return body["items"]
    if "input" in body:
        value = body["input"]
        return value if isinstance(value, list) else [value]
    if "inputs" in body:
        return body["inputs"]
    return [body]


def _item(index: int, raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):           # `input: "text"` / `input: ["a", "b"]`
        raw = {"text": raw}
    if not isinstance(raw, dict):
        raise InvalidInput(f"items[{index}] must be an object with a 'text' string")
    data = dict(raw)
    if "content" in data and "text" not in data:
        data["text"] = data.pop("content")
    text = data.get("text")
    if not isinstance(text, str):
        what = "missing" if text is None else f"a {type(text).__name__}, not a string"
        raise InvalidInput(f"items[{index}].text is {what}; this model takes text items")
    if "id" in data and data["id"] is not None and not isinstance(data["id"], str):
        raise InvalidInput(f"items[{index}].id must be a string")
    try:
        size = len(msgpack.packb(data, use_bin_type=True))
    except (OverflowError, ValueError, TypeError) as exc:   # e.g. a JSON integer beyond 64 bits
        raise InvalidInput(f"items[{index}] cannot be forwarded: {exc}") from None
    if size > MAX_ITEM_BYTES:
        raise PayloadTooLarge(f"items[{index}] is {size} bytes encoded; items over "
                              f"{MAX_ITEM_BYTES} bytes (1 MiB) are not accepted")
    return {k: data[k] for k in ("id", "text", "metadata") if data.get(k) is not None}


def _param(body: Mapping[str, Any], params: Mapping[str, Any], key: str) -> Any:
    return params[key] if key in params else body.get(key)


def parse_encode_request(body: bytes, content_type: str | None, *,
                         max_items: int = MAX_ITEMS) -> EncodeRequest:
    doc = decode_body(body, content_type)
    if not isinstance(doc, dict):
        raise InvalidInput(f"body must be an object, not {type(doc).__name__}")
    raw_items = _raw_items(doc)
    if not isinstance(raw_items, list):
        raise InvalidInput("'items' must be a list of objects")
    if not raw_items:
        raise InvalidInput("'items' must not be empty")
    if len(raw_items) > max_items:
        raise InvalidInput(f"too many items: {len(raw_items)} (at most {max_items} per request)")
    items = [_item(i, raw) for i, raw in enumerate(raw_items)]
    params = doc.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput("'params' must be an object")
    output_types = _param(doc, params, "output_types")
    if output_types is not None:
        if (not isinstance(output_types, list) or not output_types
                or not all(isinstance(t, str) and t in OUTPUT_TYPES for t in output_types)):
            raise InvalidInput(f"'output_types' must be a non-empty list of {list(OUTPUT_TYPES)}")
    instruction = _param(doc, params, "instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise InvalidInput("'instruction' must be a string")
    options = _param(doc, params, "options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput("'options' must be an object")
    try:
        msgpack.packb(options, use_bin_type=True)
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidInput(f"'options' cannot be forwarded: {exc}") from None
    is_query = _param(doc, params, "is_query")
    if is_query is None:
        is_query = options.get("is_query", False)
    if not isinstance(is_query, bool):
        raise InvalidInput("'is_query' must be true or false")
    return EncodeRequest(items=items, output_types=output_types, instruction=instruction,
                         is_query=is_query, options=dict(options))


def encode_response(model: str, results: Sequence[Mapping[str, Any]],
                    items: Sequence[Mapping[str, Any]] | None = None, *,
                    as_msgpack: bool) -> bytes:
    """The 200 body from per-item results (``{"dense": {"dims","dtype","values": ndarray}}``).

    Item ids from the request are echoed as ``id`` (the worker HTTP API does; the original
    gateway's queue path drops them, and an extra key breaks no client)."""
    out = []
    for index, result in enumerate(results):
        entry = dict(result)
        item_id = items[index].get("id") if items is not None else None
        if item_id is not None:
            entry = {"id": item_id, **entry}
        out.append(entry)
    doc = {"model": model, "items": out}
    if as_msgpack:
        return ndarray_msgpack.packb(doc)
    # orjson writes float32 arrays straight from their buffer (shortest float32 text, which
    # reads back to the same float32), about 20x faster than `tolist()` through `json`.
    return orjson.dumps(doc, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__}")


RETRYABLE_CODES = ("RESOURCE_EXHAUSTED", "MODEL_LOADING", "LORA_LOADING")


@dataclass(frozen=True)
class FailureOutcome:
    status: int
    code: str
    retry_after: int | None
    details: list[dict[str, Any]]


def all_failed_outcome(failures: Sequence[Mapping[str, Any]]) -> FailureOutcome:
    """Status when every item failed (reference gateway §7.2): one shared retryable code → 503
    with that code and ``Retry-After: 5``; a shared terminal ``MODEL_LOAD_FAILED`` → 502;
    anything else → 500 ``all_items_failed`` with each item's error."""
    details = [{"item_index": f.get("item_index"), "error": f.get("error"),
                **({"code": f["error_code"]} if f.get("error_code") else {})} for f in failures]
    codes = {f.get("error_code") for f in failures}
    if len(codes) == 1:
        code = next(iter(codes))
        if code in RETRYABLE_CODES:
            return FailureOutcome(503, code, 5, details)
        if code == "MODEL_LOAD_FAILED":
            return FailureOutcome(502, code, None, details)
    return FailureOutcome(500, "all_items_failed", None, details)

"""Encode request bodies (every bad one is a 4xx with a clear message) and response shapes."""

from __future__ import annotations

import json

import msgpack
import msgpack_numpy
import numpy as np
import pytest

from sie_actors.inference import encode_api as api
from sie_actors.inference.errors import InvalidInput, PayloadTooLarge


def parse(doc, content_type="application/json"):
    body = msgpack.packb(doc) if api.is_msgpack(content_type) else json.dumps(doc).encode()
    return api.parse_encode_request(body, content_type)


def test_reference_request_shape():
    req = parse({"items": [{"text": "a", "id": "x"}, {"text": "b"}],
                 "params": {"output_types": ["dense"], "instruction": "find",
                            "options": {"is_query": True, "profile": "p"}}})
    assert req.items == [{"id": "x", "text": "a"}, {"text": "b"}]
    assert (req.output_types, req.instruction, req.is_query) == (["dense"], "find", True)
    assert req.options == {"is_query": True, "profile": "p"}


def test_msgpack_body_and_fallbacks():
    req = parse({"input": "hello", "is_query": True}, "application/msgpack")
    assert req.items == [{"text": "hello"}] and req.is_query is True
    assert parse({"inputs": [{"content": "c"}]}).items == [{"text": "c"}]
    assert parse({"text": "whole body"}).items == [{"text": "whole body"}]
    assert parse({"items": [{"text": "x"}], "params": {"is_query": False},
                  "is_query": True}).is_query is False


@pytest.mark.parametrize("body, message", [
    (b"", "empty"),
    (b"{nope", "not valid JSON"),
    (b"[1, 2]", "must be an object, not list"),
    (b'"text"', "must be an object, not str"),
    (b'{"items": []}', "must not be empty"),
    (b'{"items": {"text": "a"}}', "must be a list"),
    (b'{"items": [{"text": 5}]}', r"items\[0\].text is a int, not a string"),
    (b'{"items": [{"id": "a"}]}', r"items\[0\].text is missing"),
    (b'{"items": [7]}', r"items\[0\] must be an object"),
    (b'{"items": [{"text": "a", "id": 3}]}', "id must be a string"),
    (b'{"items": [{"text": "a"}], "params": []}', "'params' must be an object"),
    (b'{"items": [{"text": "a"}], "params": {"output_types": ["rainbow"]}}', "output_types"),
    (b'{"items": [{"text": "a"}], "params": {"instruction": 1}}', "'instruction'"),
    (b'{"items": [{"text": "a"}], "params": {"options": "x"}}', "'options'"),
    (b'{"items": [{"text": "a"}], "params": {"options": {"is_query": "yes"}}}', "is_query"),
    (b"[" * 100000, "JSON|deeply"),
    (b'{"items": [{"text": "a", "metadata": {"n": 123456789012345678901234567890}}]}',
     "cannot be forwarded"),
    (b'{"items": [{"text": "a"}], "params": {"options": {"n": -99999999999999999999999}}}',
     "'options' cannot be forwarded"),
])
def test_bad_bodies_are_400(body, message):
    with pytest.raises(InvalidInput, match=message) as err:
        api.parse_encode_request(body, "application/json")
    assert err.value.status == 400 and err.value.detail()["error"] == "INVALID_INPUT"


def test_bad_msgpack_is_400():
    with pytest.raises(InvalidInput, match="not valid msgpack"):
        api.parse_encode_request(b"\xc1\xc1", "application/msgpack")


def test_ten_thousand_items_is_refused():
    body = json.dumps({"items": [{"text": "a"}] * 10_000}).encode()
    with pytest.raises(InvalidInput, match="too many items: 10000"):
        api.parse_encode_request(body, "application/json")


def test_item_over_one_mib_is_413():
    body = json.dumps({"items": [{"text": "a"}, {"text": "x" * (1 << 20)}]}).encode()
    with pytest.raises(PayloadTooLarge, match=r"items\[1\]") as err:
        api.parse_encode_request(body, "application/json")
    assert err.value.status == 413


def test_fifty_megabyte_body_is_413_before_parsing():
    with pytest.raises(PayloadTooLarge) as err:
        api.parse_encode_request(b" " * (50 * 1000 * 1000), "application/json")
    assert err.value.status == 413


def test_response_shapes_json_and_msgpack():
    vec = np.array([0.5, -0.25], dtype=np.float32)
    results = [{"dense": {"dims": 2, "dtype": "float32", "values": vec}}]
    doc = json.loads(api.encode_response("org/m", results, [{"text": "a", "id": "i1"}],
                                         as_msgpack=False))
    assert doc == {"model": "org/m", "items": [{"id": "i1", "dense": {
        "dims": 2, "dtype": "float32", "values": [0.5, -0.25]}}]}
    packed = api.encode_response("org/m", results, [{"text": "a"}], as_msgpack=True)
    back = msgpack.unpackb(packed, raw=False, object_hook=msgpack_numpy.decode)
    assert back["model"] == "org/m" and "id" not in back["items"][0]
    assert back["items"][0]["dense"]["values"].dtype == np.float32
    assert back["items"][0]["dense"]["values"].tolist() == [0.5, -0.25]


@pytest.mark.parametrize("accept, ctype, expected", [
    ("application/msgpack", "application/json", True),
    ("application/json", "application/msgpack", False),
    (None, "application/json", False), ("*/*", "application/msgpack", True),
])
def test_response_format_negotiation(accept, ctype, expected):
    assert api.wants_msgpack(accept, ctype) is expected


def test_all_failed_outcomes():
    loading = [{"item_index": i, "error": "x", "error_code": "MODEL_LOADING"} for i in range(2)]
    assert (api.all_failed_outcome(loading).status, api.all_failed_outcome(loading).retry_after) \
        == (503, 5)
    terminal = api.all_failed_outcome([{"item_index": 0, "error": "w", "error_code":
                                        "MODEL_LOAD_FAILED"}])
    assert (terminal.status, terminal.retry_after) == (502, None)
    mixed = api.all_failed_outcome([{"item_index": 0, "error": "a", "error_code": "inference_error"},
                                    {"item_index": 1, "error": "b", "error_code": "MODEL_LOADING"}])
    assert mixed.status == 500 and mixed.code == "all_items_failed"
    assert mixed.details[1] == {"item_index": 1, "error": "b", "code": "MODEL_LOADING"}


from hypothesis import assume, given, settings, strategies as st  # noqa: E402

from sie_actors.inference.errors import InferenceError  # noqa: E402

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["items", "params", "text", "id", "input", "inputs",
                                       "options", "is_query", "output_types", "instruction",
                                       "content", "x"]), children, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(doc=JSONISH, as_msgpack=st.booleans())
def test_any_body_is_parsed_or_refused_with_a_4xx(doc, as_msgpack):
    ctype = "application/msgpack" if as_msgpack else "application/json"
    try:
        body = msgpack.packb(doc) if as_msgpack else json.dumps(doc).encode()
    except OverflowError:
        assume(False)                 # an integer msgpack cannot hold: no such msgpack body
    try:
        req = api.parse_encode_request(body, ctype)
    except InferenceError as exc:
        assert 400 <= exc.status < 500 and exc.message
    else:
        assert req.items and all(isinstance(i["text"], str) for i in req.items)
        assert isinstance(req.is_query, bool) and isinstance(req.options, dict)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64), as_msgpack=st.booleans())
def test_any_bytes_are_parsed_or_refused_with_a_4xx(body, as_msgpack):
    try:
        api.parse_encode_request(body, "application/msgpack" if as_msgpack else "application/json")
    except InferenceError as exc:
        assert 400 <= exc.status < 500

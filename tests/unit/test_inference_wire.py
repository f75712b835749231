"""The work-queue wire format against the reference: subjects, names, WorkItem/WorkResult maps,
and numpy arrays byte-identical to msgpack_numpy's."""

from __future__ import annotations

import msgpack
import msgpack_numpy
import numpy as np
import pytest

from sie_actors.inference import ndarray_msgpack, wire
from sie_actors.inference.wire import WireError, WorkItem


@pytest.mark.parametrize("model, token", [
    ("vidore/colqwen2.5-v0.2", "vidore__colqwen2_dot_5-v0_dot_2"),
    ("BAAI/bge-m3", "BAAI__bge-m3"),
    ("a b*c>d", "a_b_c_d"),
])
def test_subject_normalization(model, token):
    assert wire.normalize_model_id(model) == token
    assert wire.work_subject(model, "l4") == f"sie.work.{token}.l4"


def test_subject_round_trip_and_rejects():
    subject = wire.work_subject("vidore/colqwen2.5-v0.2", "_default")
    assert subject == "sie.work.vidore__colqwen2_dot_5-v0_dot_2._default"
    assert wire.model_from_subject(subject) == "vidore/colqwen2.5-v0.2"
    for bad in ("sie.work.x", "sie.other.x.p", "sie.work.a.b.c", "sie.work..p"):
        assert wire.model_from_subject(bad) is None


def test_stream_consumer_and_inbox_names():
    assert wire.stream_name("l4") == "WORK_POOL_l4"
    assert wire.stream_subjects("l4") == ["sie.work.*.l4"]
    assert wire.consumer_name("default", "_default") == "default__default"
    assert wire.reply_subject("r1", "q1") == "_INBOX.r1.q1"


def make_item(**extra) -> WorkItem:
    return WorkItem(work_item_id="rq.0", request_id="rq", item_index=0, total_items=1,
                    operation="encode", model_id="org/m", profile_id="default",
                    pool_name="_default", router_id="r1", reply_subject="_INBOX.r1.rq",
                    timestamp=1712345678.5, **extra)


def test_work_item_is_a_named_map_and_round_trips():
    item = make_item(item={"text": "hi"}, is_query=True, options={"k": 1})
    raw = msgpack.unpackb(item.pack(), raw=False)
    assert set(raw) == {"work_item_id", "request_id", "item_index", "total_items", "operation",
                        "model_id", "profile_id", "pool_name", "router_id", "reply_subject",
                        "timestamp", "item", "is_query", "options"}
    assert wire.unpack_work_item(item.pack()) == item


def test_work_item_from_the_original_gateway_shape():
    """As rmp_serde writes it: every optional field present, null when unset, `content` keys."""
    doc = {"work_item_id": "r.1", "request_id": "r", "item_index": 1, "total_items": 2,
           "operation": "encode", "model_id": "org/m", "profile_id": "default",
           "pool_name": "l4", "machine_profile": None, "item": {"content": "x", "junk": 1},
           "payload_ref": None, "output_types": ["dense"], "instruction": None, "is_query": None,
           "options": None, "bundle_config_hash": "h", "router_id": "g",
           "reply_subject": "_INBOX.g.r", "timestamp": 1.0}
    item = wire.unpack_work_item(msgpack.packb(doc, use_bin_type=True))
    assert item.item == {"text": "x"} and item.output_types == ["dense"] and item.is_query is None
    assert item.reply_allowed


@pytest.mark.parametrize("doc, message", [
    (b"\xc1", "not msgpack"),
    (msgpack.packb([1, 2]), "not a msgpack map"),
    (msgpack.packb({"work_item_id": "x"}), "'request_id' is missing"),
])
def test_bad_work_items(doc, message):
    with pytest.raises(WireError, match=message):
        wire.unpack_work_item(doc)


def test_bool_is_not_an_index():
    raw = msgpack.unpackb(make_item().pack(), raw=False)
    raw["item_index"] = True
    with pytest.raises(WireError, match="item_index"):
        wire.unpack_work_item(msgpack.packb(raw))


def test_reply_outside_inbox_is_refused():
    item = make_item()
    item.reply_subject = "sie.config.x"
    assert not item.reply_allowed


def test_success_and_error_results():
    item = make_item()
    payload = wire.dense_payload(np.arange(4, dtype=np.float64))
    ok = wire.unpack_work_result(wire.success_result(item, "w1", payload, queue_ms=1.5).pack())
    assert ok.success and ok.worker_id == "w1" and ok.processing_ms == 0.0
    assert ok.payload_fetch_ms == 0.0 and ok.queue_ms == 1.5
    dense = wire.read_payload(ok.result_msgpack)["dense"]
    assert dense["dims"] == 4 and dense["dtype"] == "float32"
    assert dense["values"].dtype == np.float32 and dense["values"].tolist() == [0, 1, 2, 3]
    bad = wire.unpack_work_result(wire.error_result(item, "w1", "boom", "inference_error").pack())
    assert (bad.success, bad.error, bad.error_code) == (False, "boom", "inference_error")
    raw = msgpack.unpackb(bad.pack(), raw=False)
    assert "result_msgpack" not in raw and raw["work_item_id"] == "rq.0"


def test_success_without_payload_is_invalid():
    with pytest.raises(WireError, match="no result_msgpack"):
        wire.unpack_work_result(msgpack.packb({"work_item_id": "a", "request_id": "b",
                                               "item_index": 0, "success": True}))


@pytest.mark.parametrize("value", [np.arange(6, dtype=np.float32).reshape(2, 3),
                                   np.array([1, -2], dtype=np.int8), np.zeros(0, np.float16),
                                   np.float32(1.5), np.int64(7)])
def test_arrays_are_byte_identical_to_msgpack_numpy(value):
    ours = ndarray_msgpack.packb({"v": value})
    theirs = msgpack.packb({"v": value}, default=msgpack_numpy.encode, use_bin_type=True)
    assert ours == theirs
    back = msgpack.unpackb(ours, raw=False, object_hook=msgpack_numpy.decode)["v"]
    assert np.array_equal(back, value) and back.dtype == value.dtype
    mine = ndarray_msgpack.unpackb(theirs)["v"]
    assert np.array_equal(mine, value) and mine.dtype == value.dtype


def test_non_contiguous_arrays_pack_their_values():
    value = np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1]
    assert ndarray_msgpack.unpackb(ndarray_msgpack.packb(value)).tolist() == [1, 5, 9]


from hypothesis import given, settings, strategies as st  # noqa: E402

VALUES = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                      | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                          max_size=3),
                      max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(base=st.booleans(), changes=st.dictionaries(
    st.sampled_from(["work_item_id", "item_index", "timestamp", "item", "options", "is_query",
                     "success", "result_msgpack", "reply_subject", "output_types"]), VALUES),
    junk=st.binary(max_size=32))
def test_any_message_decodes_or_is_a_wire_error(base, changes, junk):
    start = msgpack.unpackb(make_item().pack(), raw=False) if base else {}
    for data in (msgpack.packb({**start, **changes}, use_bin_type=True), junk):
        for unpack in (wire.unpack_work_item, wire.unpack_work_result):
            try:
                unpack(data)
            except WireError:
                pass

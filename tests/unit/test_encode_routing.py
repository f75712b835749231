"""The gateway's data-plane decisions as pure functions: routing, the inbox, loaded_workers."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from sie_actors.domain.bundle import Bundle
from sie_actors.domain.errors import BundleConflict, ModelNotFound
from sie_actors.domain.registry import Registry
from sie_actors.domain.sync import MirrorPosition
from sie_actors.domain.worker_status import WorkerStatus, status_frame
from sie_actors.inference import encode_api, wire

from sie_gateway.encode import Provisioning, pick_route, work_items
from sie_gateway.inbox import Inbox
from sie_gateway.mirror import MirrorCell, MirrorState
from sie_gateway.readiness import model_status
from sie_gateway.workers import WorkerView

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"


def registry() -> Registry:
    bundles = [Bundle(name="default", priority=10, adapters=("sie_server.adapters.sentence_transformer",)),
               Bundle(name="other", priority=20, adapters=("sie_server.adapters.sglang",))]
    return Registry.build(bundles, [{"sie_id": "acme/minilm", "profiles": {
        "default": {"adapter_path": ST, "max_batch_tokens": 512}}}])


def cell() -> MirrorCell:
    return MirrorCell(MirrorState(registry(), MirrorPosition(1, "g"), bootstrapped=True))


def view(name: str, bundle: str, pool: str = "", loaded=()) -> WorkerView:
    frame = status_frame(name=name, ready=True, bundle=bundle, bundle_config_hash="h",
                         pool_name=pool, loaded_models=list(loaded))
    return WorkerView(url=f"http://{name}", status=WorkerStatus.parse(json.dumps(frame)),
                      received_at=0.0, connected=True)


def test_route_unknown_model_404_and_conflict_409():
    with pytest.raises(ModelNotFound):
        pick_route(cell(), "nobody/model", [view("w", "default")], None)
    with pytest.raises(BundleConflict):
        pick_route(cell(), "other:/acme/minilm", [view("w", "default")], None)


def test_route_needs_a_healthy_worker_of_the_bundle():
    with pytest.raises(Provisioning):
        pick_route(cell(), "acme/minilm", [view("w", "other")], None)
    route = pick_route(cell(), "default:/acme/minilm", [view("w", "default", pool="p1")], None)
    assert (route.model_id, route.bundle, route.pool) == ("acme/minilm", "default", "p1")
    # a worker reporting no pool consumes its bundle's name; a pinned pool wins
    assert pick_route(cell(), "acme/minilm", [view("w", "default")], None).pool == "default"
    assert pick_route(cell(), "acme/minilm", [], "pinned").pool == "pinned"


def test_work_items_carry_the_reference_fields():
    route = pick_route(cell(), "acme/minilm", [view("w", "default")], None)
    req = encode_api.parse_encode_request(b'{"items": [{"text": "a"}, {"text": "b"}], '
                                          b'"params": {"is_query": true}}', "application/json")
    inbox = Inbox("router1")
    messages = work_items(route, req, "req1", inbox, "hash1")
    assert [s for s, _ in messages] == ["sie.work.acme__minilm.default"] * 2
    item = wire.unpack_work_item(messages[1][1])
    assert (item.work_item_id, item.item_index, item.total_items) == ("req1.1", 1, 2)
    assert item.reply_subject == "_INBOX.router1.req1" and item.is_query is True
    assert item.item == {"text": "b"} and item.bundle_config_hash == "hash1"


def result(request_id: str, index: int, success: bool = True) -> bytes:
    return wire.WorkResult(work_item_id=f"{request_id}.{index}", request_id=request_id,
                           item_index=index, success=success, worker_id="w",
                           result_msgpack=b"\x80" if success else None,
                           error=None if success else "x", error_code=None).pack()


async def test_inbox_files_only_its_own_requests_results():
    inbox = Inbox("r")
    pending = inbox.open("a", 2)
    other = inbox.open("b", 1)
    await inbox.deliver(result("zzz", 0))            # unknown request: dropped
    await inbox.deliver(result("a", 5))              # index out of range: dropped
    await inbox.deliver(b"not msgpack at all")       # garbage: dropped
    await inbox.deliver(msgpack.packb({"request_id": "a"}))  # not a WorkResult: dropped
    await inbox.deliver(result("a", 0))
    await inbox.deliver(result("a", 0, success=False))  # a duplicate does not replace the first
    assert not pending.done.is_set() and pending.results[0].success
    await inbox.deliver(result("a", 1))
    assert pending.done.is_set() and sorted(pending.results) == [0, 1]
    assert not other.done.is_set() and other.results == {}
    assert inbox.dropped == 5   # unknown, out of range, garbage, not a result, duplicate
    inbox.close("a")
    await inbox.deliver(result("a", 1))              # after close: dropped, no error
    assert inbox.dropped == 6


def test_status_lists_loaded_workers_per_bundle():
    reg = registry()
    entry = reg.get_model("acme/minilm")
    expected = reg.bundle_config_hash("default")
    frames = [view("w1", "default", loaded=["acme/minilm"]), view("w2", "default")]
    for v in frames:
        object.__setattr__(v.status, "bundle_config_hash", expected)
    doc = model_status(entry, reg, 1, frames)
    [bundle] = doc["bundles"]
    assert bundle["acked_workers"] == ["w1", "w2"] and bundle["loaded_workers"] == ["w1"]


def test_an_unreadable_worker_result_is_an_item_error():
    from sie_gateway.encode import _payload
    good = wire.unpack_work_result(wire.WorkResult(
        work_item_id="r.0", request_id="r", item_index=0, success=True, worker_id="w",
        result_msgpack=wire.dense_payload(np.ones(3))).pack())
    assert _payload(good)["dense"]["dims"] == 3
    for junk in (b"\xc1", msgpack.packb([1, 2])):
        bad = wire.WorkResult(work_item_id="r.0", request_id="r", item_index=0, success=True,
                              worker_id="w", result_msgpack=junk)
        assert _payload(bad)["error_code"] == "inference_error"


def test_the_cli_reads_loaded_workers_through_the_one_status_reader():
    from sie_tools.admin.readiness import report_of
    body = {"all_bundles_acked": True, "bundles": [
        {"bundle_id": "default", "acked": True, "acked_workers": ["w1"], "loaded_workers": ["w1"]},
        {"bundle_id": "other", "acked": True, "acked_workers": ["w2"], "loaded_workers": []}]}
    report = report_of("gw", 200, json.dumps(body).encode())
    assert report.acked and not report.loaded
    body["bundles"][1]["loaded_workers"] = ["w2"]
    assert report_of("gw", 200, json.dumps(body).encode()).loaded
    assert not report_of("gw", 404, b"{}").loaded

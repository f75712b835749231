"""What one answer means for a write (the workload's outcome rules), the generated operations,
and the observer's convergence judgements."""

from __future__ import annotations

import httpx
import orjson
import pytest
import yaml

from sie_chaos.observer import (CatchUpClock, Probe, caught_up, convergence_problems, lagging,
                                published_hashes)
from sie_chaos.workload import (AttemptResult, OpGenerator, classify_exception,
                                classify_response, settle)


def error(code: str) -> bytes:
    return orjson.dumps({"detail": {"error": code, "message": "..."}})


@pytest.mark.parametrize("status, body, kind, retry", [
    (201, b"{}", "ok", False),
    (200, b"{}", "ok", False),
    (503, error("nats_unavailable"), "definite", True),
    (503, error("store_unavailable"), "definite", True),
    (503, error("write_timeout"), "unknown", True),
    (503, b"<html>proxy</html>", "unknown", True),
    (409, error("conflict"), "definite", False),
    (422, error("idempotency_mismatch"), "definite", False),
    (500, b"oops", "unknown", True),
])
def test_answers(status, body, kind, retry):
    result = classify_response(status, body)
    assert (result.kind, result.retry) == (kind, retry)


def test_transport_errors():
    request = httpx.Request("POST", "http://x")
    assert classify_exception(httpx.ConnectError("refused", request=request)).kind == "definite"
    assert classify_exception(httpx.ReadTimeout("slow", request=request)).kind == "unknown"
    assert classify_exception(httpx.RemoteProtocolError("gone", request=request)).kind == \
        "unknown"


def r(kind: str) -> AttemptResult:
    return AttemptResult(kind, True, "x")


def test_settle():
    assert settle([r("unknown"), r("definite"), r("ok")]) == "ok"
    assert settle([r("definite"), r("definite")]) == "failed"
    assert settle([r("definite"), r("unknown"), r("definite")]) == "indeterminate"
    assert settle([]) == "indeterminate"


def test_every_operation_writes_its_own_pair_with_its_own_key():
    adapters = {"default": "m.a:X", "sglang": "m.b:Y"}
    generator = OpGenerator(5, 1, adapters, append_ratio=0.5)
    ops = [generator.next(i) for i in range(1, 200)]
    assert len({(o.model, o.profile) for o in ops}) == len(ops)
    assert len({o.key for o in ops}) == len(ops)
    assert {o.f for o in ops} == {"add", "append"} and {o.bundle for o in ops} == set(adapters)
    for op in ops:
        doc = yaml.safe_load(op.body)
        assert doc["sie_id"] == op.model and list(doc["profiles"]) == [op.profile]
        assert doc["profiles"][op.profile]["adapter_path"] == adapters[op.bundle]
    again = OpGenerator(5, 1, adapters, append_ratio=0.5)
    assert [again.next(i) for i in range(1, 200)] == ops


CONFIG = {"epoch": 9, "generation": "g", "bundles_hash": "B",
          "bundle_config_hashes": {"default": "h9", "sglang": "s9"}}


def probe(gateways=None, workers=None, seen_workers=None) -> Probe:
    sync = dict(CONFIG, bootstrapped=True)
    return Probe(0.0, CONFIG, gateways or {"gateway-0": sync},
                 {"gateway-0": seen_workers or {"default": 1, "sglang": 1}},
                 workers or {"w-d": {"ready": True, "bundle": "default",
                                     "bundle_config_hash": "h9"},
                             "w-s": {"ready": True, "bundle": "sglang",
                                     "bundle_config_hash": "s9"}})


EXPECTED = {"default": 1, "sglang": 1}


def test_caught_up_and_converged():
    seen = {"default": {"h8", "h9"}, "sglang": {"s9"}}
    assert caught_up(probe(), 9, seen, EXPECTED)
    assert convergence_problems(probe(), EXPECTED) == []


def test_not_caught_up():
    seen = {"default": {"h9"}, "sglang": {"s9"}}
    behind = dict(CONFIG, epoch=8, bootstrapped=True)
    assert not caught_up(probe(gateways={"gateway-0": behind}), 9, seen, EXPECTED)
    assert caught_up(probe(gateways={"gateway-0": behind}), 8, seen, EXPECTED)
    other = dict(CONFIG, generation="h", bootstrapped=True)
    assert not caught_up(probe(gateways={"gateway-0": other}), 0, seen, EXPECTED)
    assert not caught_up(probe(gateways={"gateway-0": None}), 0, seen, EXPECTED)
    assert not caught_up(probe(seen_workers={"default": 1, "sglang": 0}), 0, seen, EXPECTED)
    stale = {"w-d": {"ready": True, "bundle": "default", "bundle_config_hash": "h1"}}
    assert not caught_up(probe(workers=stale), 0, seen, EXPECTED)


def test_lagging_names_each_node_behind_and_why():
    seen = {"default": {"h9"}, "sglang": {"s9"}}
    behind = dict(CONFIG, epoch=8, bootstrapped=True)
    stale = {"w-d": {"ready": True, "bundle": "default", "bundle_config_hash": "h1"},
             "w-s": {"ready": False, "bundle": "sglang"}}
    assert lagging(probe(gateways={"gateway-0": behind}, workers=stale), 9, seen, EXPECTED) == {
        "gateway-0": "epoch 8 < 9", "w-d": "hash 'h1' not seen since the heal",
        "w-s": "not ready"}
    assert lagging(probe(seen_workers={"default": 1}), 9, seen, EXPECTED) == {
        "gateway-0": "sees workers {'default': 1}"}
    assert lagging(Probe(0.0, None, {}, {}, {}), 9, seen, EXPECTED) == {
        "sie-config": "did not answer"}


def timed(at: float, gateway_epoch: int, worker_hash: str) -> Probe:
    """A probe whose gateway answered at ``at`` and worker at ``at + 0.1``; finished at +0.3."""
    base = probe(gateways={"gateway-0": dict(CONFIG, epoch=gateway_epoch, bootstrapped=True)},
                 workers={"w-d": {"ready": True, "bundle": "default",
                                  "bundle_config_hash": worker_hash}})
    return Probe(at, base.config, base.gateways, base.gateway_workers, base.workers,
                 finished=at + 0.3, answered={"gateway-0": at, "w-d": at + 0.1})


def test_the_clock_counts_until_the_last_node_caught_up_for_good():
    seen = {"default": {"h9"}}
    clock = CatchUpClock(start=10.0)
    judge = lambda p: clock.observe(p, lagging(p, 9, seen, {"default": 1, "sglang": 1}))
    assert judge(timed(10.0, 8, "h9")) is None          # the gateway is behind
    assert judge(timed(10.5, 9, "h1")) is None          # the gateway caught up, the worker not
    assert judge(timed(11.0, 9, "h1")) is None
    done = judge(timed(11.5, 9, "h9"))                  # both: the worker since 11.6
    assert done is not None
    assert done.nodes == {"gateway-0": 0.5, "w-d": 1.6}
    assert (done.seconds, done.whole_probe) == (1.6, 1.8)
    assert done.lag == {"w-d": "hash 'h1' not seen since the heal"}
    # a node seen caught up, then behind again, counts from its second recovery
    clock = CatchUpClock(start=0.0)
    judge(timed(0.0, 9, "h1"))
    judge(timed(0.5, 8, "h1"))
    assert judge(timed(1.0, 9, "h9")).nodes["gateway-0"] == 1.0


def test_convergence_problems_name_the_difference():
    lagging = dict(CONFIG, epoch=8, bundles_hash="A", bootstrapped=True)
    problems = convergence_problems(probe(gateways={"gateway-0": lagging}), EXPECTED)
    assert problems == ["gateway-0 epoch 8 != sie-config's 9",
                        "gateway-0 bundles_hash 'A' != sie-config's 'B'"]
    stale = {"w-d": {"ready": False, "bundle": "default", "bundle_config_hash": "h1"}}
    assert convergence_problems(probe(workers=stale), EXPECTED) == [
        "w-d is not ready", "w-d hash 'h1' != sie-config's 'h9' for bundle default"]


def test_a_success_body_must_acknowledge_the_operations_own_write():
    from sie_chaos.workload import ack_problem
    op = OpGenerator(1, 0, {"default": "m.a:X"}, append_ratio=0).next(1)
    created = orjson.dumps({"model_id": op.model, "created_profiles": [op.profile],
                            "existing_profiles_skipped": []})
    replayed = orjson.dumps({"model_id": op.model.upper(), "created_profiles": [],
                             "existing_profiles_skipped": [op.profile]})
    assert ack_problem(op, created) == "" and ack_problem(op, replayed) == ""
    other = orjson.dumps({"model_id": "chaos/else", "created_profiles": [op.profile]})
    assert "not" in ack_problem(op, other)
    assert "neither" in ack_problem(op, orjson.dumps({"model_id": op.model,
                                                      "created_profiles": ["p9"]}))
    assert "unreadable" in ack_problem(op, b"<html>")


def test_published_hashes_are_every_write_of_each_bundle_in_a_deltas_answer():
    answer = {"epoch": 12, "deltas": [
        {"bundle_id": "default", "epoch": 10, "bundle_config_hash": "h10"},
        {"bundle_id": "sglang", "epoch": 11, "bundle_config_hash": "s11"},
        {"bundle_id": "default", "epoch": 12, "bundle_config_hash": "h12"},
        {"bundle_id": "default", "epoch": 12, "bundle_config_hash": ""},      # says nothing
        "not a delta", {"epoch": 13}]}
    assert published_hashes(answer) == {"default": {"h10", "h12"}, "sglang": {"s11"}}
    assert published_hashes({"deltas": "junk"}) == {} == published_hashes({})
    # a worker between two probe samples is judged by the hashes sie-config really had
    seen = {"default": {"h8"}, "sglang": {"s9"}}
    between = probe(workers={"w-d": {"ready": True, "bundle": "default",
                                     "bundle_config_hash": "h10"},
                             "w-s": {"ready": True, "bundle": "sglang",
                                     "bundle_config_hash": "s9"}})
    assert not caught_up(between, 9, seen, EXPECTED)
    seen["default"] |= published_hashes(answer)["default"]
    assert caught_up(between, 9, seen, EXPECTED)

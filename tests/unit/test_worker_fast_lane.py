"""The worker's fast lane: which fetched batches it starts on their host, and how they finish."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import trio

from sie_actors.domain.bundle import Bundle
from sie_actors.domain.registry import Registry
from sie_actors.inference import wire
from sie_actors.nats.jetstream import Delivery
from sie_worker.inference.encode_items import EncodeOutcome, settle_batch
from sie_worker.inference.fast_lane import FastLane
from sie_worker.inference.model_host import ModelHost
from tests.unit.test_worker_encode_items import item
from tests.unit.test_worker_model_host import FakeAdapter, started_host

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
REGISTRY = Registry.build(
    [Bundle("default", 10, ("sie_server.adapters.sentence_transformer",))],
    [{"sie_id": "m", "profiles": {"default": {"adapter_path": ST, "max_batch_tokens": 8}}},
     {"sie_id": "other", "profiles": {"default": {"adapter_path": ST, "max_batch_tokens": 8}}}])


class RecordingConsumer:
    """Stands in for the pull consumer: records what the host thread sends, then wakes trio."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[str], list[bytes]]] = []

    def reply_and_ack_from_thread(self, replies, deliveries, after=None) -> bool:
        self.sent.append((threading.get_ident(), [s for s, _ in replies],
                          [d.data for d in deliveries]))
        if after is not None:
            after()
        return True


class Hosts:
    def __init__(self, hosts: dict[str, ModelHost]) -> None:
        self.hosts = hosts

    def serving(self, model_id: str):
        return self.hosts.get(model_id)


def delivery(i: int, text: str = "ab", **changes) -> Delivery:
    return Delivery(dataclasses.replace(item(i, text), **changes).pack(), 1, handle=None)


@pytest.fixture
async def lane():
    host = await started_host(FakeAdapter())
    consumer = RecordingConsumer()
    yield FastLane(consumer, Hosts({"m": host}), lambda: REGISTRY, bundle="default",
                   worker_id="w"), consumer, host
    await host.aclose()


async def test_a_plain_batch_is_computed_and_sent_from_the_host_thread(lane):
    fast_lane, consumer, host = lane
    deliveries = [delivery(0, "ab"), delivery(1, "cd")]
    start = await trio.to_thread.run_sync(fast_lane.start, deliveries)   # the loop's thread
    assert start is not None and fast_lane.taken == 1
    outcome = EncodeOutcome()
    await settle_batch(start.started, "w", outcome)
    assert [r.item_index for r in outcome.sent] == [0, 1] and outcome.results == []
    [(thread, subjects, acked)] = consumer.sent
    assert thread == host.thread_id
    assert subjects == ["_INBOX.g.r", "_INBOX.g.r"]
    assert acked == [d.data for d in deliveries]
    vectors = [wire.read_payload(r.result_msgpack)["dense"]["values"] for r in outcome.sent]
    assert [list(v) for v in vectors] == [[2, 0], [2, 0]]


@pytest.mark.parametrize("why, deliveries", [
    ("undecodable", [Delivery(b"\x00garbage", 1, None)]),
    ("not an inbox", [delivery(0, reply_subject="sie.config.x")]),
    ("another operation", [delivery(0, operation="score")]),
    ("an output it cannot make", [delivery(0, output_types=["sparse"])]),
    ("two models", [delivery(0), delivery(1, model_id="other")]),
    ("a model without a loaded host", [delivery(0, model_id="other")]),
    ("a model not in the registry", [delivery(0, model_id="gone")]),
    ("two computation groups", [delivery(0), delivery(1, is_query=True)]),
    ("over one batch's budget", [delivery(0, "abcdef"), delivery(1, "ghijk")]),
])
async def test_anything_else_is_left_to_trio_and_nothing_is_started(lane, why, deliveries):
    fast_lane, consumer, host = lane
    assert fast_lane.start(deliveries) is None, why
    assert fast_lane.taken == 0 and host.pending == 0 and consumer.sent == []


async def test_a_host_that_refuses_at_once_leaves_the_batch_to_trio(lane):
    fast_lane, consumer, host = lane
    await host.aclose()        # closed: `submit` refuses (ModelUnloaded)
    assert fast_lane.start([delivery(0)]) is None
    assert consumer.sent == []


async def test_a_one_item_batch_on_an_idle_host_is_computed_and_sent_from_the_loops_thread(lane):
    fast_lane, consumer, host = lane

    def start_on_this_thread():
        return fast_lane.start([delivery(0, "abc")]), threading.get_ident()

    start, loop_thread = await trio.to_thread.run_sync(start_on_this_thread)
    assert start is not None
    outcome = EncodeOutcome()
    await settle_batch(start.started, "w", outcome)
    [(thread, subjects, _acked)] = consumer.sent
    assert thread == loop_thread != host.thread_id
    assert [r.item_index for r in outcome.sent] == [0]

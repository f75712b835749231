"""Work items → work results through a model host: batching, refusals, retries, timings."""

from __future__ import annotations

import threading

import numpy as np
import trio
import trio.testing

from sie_actors.inference import wire
from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.wire import WorkItem
from sie_actors.procs.polling import wait_for
from sie_worker.inference.encode_items import encode_items
from sie_worker.inference.model_host import ModelHost
from tests.unit.test_worker_model_host import FakeAdapter, started_host


class RecordingAdapter(FakeAdapter):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[list[str], bool]] = []

    def encode(self, texts, options):
        self.calls.append((list(texts), options.is_query))
        return super().encode(texts, options)


def item(i, text="abc", **extra) -> WorkItem:
    return WorkItem(work_item_id=f"r.{i}", request_id="r", item_index=i, total_items=9,
                    operation="encode", model_id="m", profile_id="default", pool_name="p",
                    router_id="g", reply_subject="_INBOX.g.r", timestamp=100.0,
                    item={"text": text}, **extra)


async def test_batches_by_group_and_budget_and_reports_each_item():
    adapter = RecordingAdapter()
    host = await started_host(adapter)
    items = [item(0, "aaaa"), item(1, "bbbb", is_query=True), item(2, "cccc"), item(3, "dddd")]
    out = await encode_items(host, items, worker_id="w", max_batch_tokens=8, clock=lambda: 100.5)
    assert adapter.calls == [(["aaaa", "cccc"], False), (["dddd"], False), (["bbbb"], True)]
    assert out.retry == []
    by_index = {r.item_index: r for r in out.results}
    assert sorted(by_index) == [0, 1, 2, 3]
    for index, result in by_index.items():
        assert result.success and result.worker_id == "w" and result.queue_ms == 500.0
        dense = wire.read_payload(result.result_msgpack)["dense"]
        assert dense["dims"] == 2
        assert dense["values"].tolist() == [4.0, 1.0 if index == 1 else 0.0]
    await host.aclose()


async def test_items_the_model_cannot_take_get_error_results():
    adapter = RecordingAdapter()
    host = await started_host(adapter)
    items = [item(0, output_types=["sparse"]), item(1, options={"pooling": "max"}),
             item(2), item(3)]
    items[3].item = {"id": "x"}
    out = await encode_items(host, items, worker_id="w", max_batch_tokens=100)
    errors = {r.item_index: r for r in out.results if not r.success}
    assert sorted(errors) == [0, 1, 3]
    assert all(r.error_code == "INVALID_INPUT" for r in errors.values())
    assert "sparse" in errors[0].error and "'max'" in errors[1].error
    assert adapter.calls == [(["abc"], False)]
    await host.aclose()


async def test_loading_model_hands_items_back_with_a_delay():
    gate = threading.Event()
    host = ModelHost("m", lambda: gate.wait(10) and FakeAdapter())
    host.start()
    out = await encode_items(host, [item(0), item(1)], worker_id="w", max_batch_tokens=100)
    assert out.results == [] and [(i.item_index, d) for i, d in out.retry] == [(0, 5.0), (1, 5.0)]
    gate.set()
    await host.wait_settled()
    await host.aclose()


async def test_missing_weights_are_terminal_error_results():
    def fail():
        raise ModelLoadFailed("weights for 'm' not found; looked in X")

    host = ModelHost("m", fail)
    host.start()
    await host.wait_settled()
    out = await encode_items(host, [item(0)], worker_id="w", max_batch_tokens=100)
    assert out.retry == []
    [result] = out.results
    assert (result.success, result.error_code) == (False, "MODEL_LOAD_FAILED")
    assert "looked in X" in result.error
    await host.aclose()


async def test_adapter_failure_is_inference_error_for_the_batch_only():
    host = await started_host(RecordingAdapter())
    out = await encode_items(host, [item(0, "boom"), item(1, "fine", is_query=True)],
                             worker_id="w", max_batch_tokens=100)
    by_index = {r.item_index: r for r in out.results}
    assert (by_index[0].success, by_index[0].error_code) == (False, "inference_error")
    assert by_index[1].success
    assert np.allclose(wire.read_payload(by_index[1].result_msgpack)["dense"]["values"], [4, 1])
    await host.aclose()


async def test_send_now_gets_each_batch_on_the_host_thread_and_errors_stay_for_the_caller():
    """Computed batches go to `send_now` from the model's thread, batch by batch; what it took
    is reported as `sent`, what it refused stays in `results`, refusals never reach it."""
    host = await started_host(RecordingAdapter())
    calls: list[tuple[int, list[int]]] = []

    def send_now(results, wake):
        calls.append((threading.get_ident(), [r.item_index for r in results]))
        if len(calls) == 1:             # takes the first batch, refuses the second
            wake()
            return True
        return False

    items = [item(0, "aaaa"), item(1, "bbbb"), item(2, "cccc"), item(3, "x", output_types=["sparse"])]
    out = await encode_items(host, items, worker_id="w", max_batch_tokens=8, send_now=send_now)
    assert calls == [(host.thread_id, [0, 1]), (host.thread_id, [2])]
    assert [r.item_index for r in out.sent] == [0, 1]
    assert sorted(r.item_index for r in out.results) == [2, 3]
    assert not next(r for r in out.results if r.item_index == 3).success
    await host.aclose()


async def test_trio_hears_of_a_sent_batch_only_when_send_now_wakes_it():
    """`send_now` owns the wake-up of a batch it took: the caller waits until it is called (the
    consumer calls it once the reply is handed to the connection)."""
    host = await started_host(RecordingAdapter())
    wakes: list = []

    def send_now(results, wake):
        wakes.append(wake)
        return True

    done: list = []

    async def run() -> None:
        done.append(await encode_items(host, [item(0, "ab")], worker_id="w",
                                       max_batch_tokens=8, send_now=send_now))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_for(lambda: wakes, what="send_now called")
        await trio.testing.wait_all_tasks_blocked()
        assert done == []               # computed and handed over, but not woken yet
        await trio.to_thread.run_sync(wakes[0])
    [out] = done
    assert [r.item_index for r in out.sent] == [0] and out.results == []
    await host.aclose()

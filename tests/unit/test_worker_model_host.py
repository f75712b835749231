"""The model host: loads and encodes on its own thread, bounded queue, terminal load failures."""

from __future__ import annotations

import threading

import numpy as np
import trio.testing
import pytest
import trio

from sie_worker.inference.model_host import (CLOSED, FAILED, LOADED, LOADING,
                                                      ModelHost)
from sie_actors.inference.adapters.base import EncodeOptions
from sie_actors.inference.errors import (InferenceFailed, ModelLoadFailed, ModelLoading,
                                         ModelUnloaded, QueueFull)
from sie_actors.procs.polling import wait_for


class FakeAdapter:
    """Encodes text to [len(text), is_query]; can be held mid-batch by a gate."""

    dims = 2

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.threads: set[int] = set()
        self.started = threading.Event()

    def token_counts(self, texts):
        return [len(t) for t in texts]

    def encode(self, texts, options):
        self.threads.add(threading.get_ident())
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if "boom" in texts:
            raise RuntimeError("kaboom")
        return np.array([[len(t), float(options.is_query)] for t in texts], dtype=np.float32)


async def started_host(adapter, **kwargs) -> ModelHost:
    host = ModelHost("org/m", lambda: adapter, **kwargs)
    host.start()
    assert await host.wait_settled() == LOADED
    return host


async def test_encodes_on_one_dedicated_thread_not_trios():
    adapter = FakeAdapter()
    host = await started_host(adapter)
    first = await host.encode(["ab", "c"], EncodeOptions(is_query=True))
    second = await host.encode(["xyz"])
    assert first.vectors.tolist() == [[2, 1], [1, 1]] and second.vectors.tolist() == [[3, 0]]
    assert first.inference_ms >= 0
    assert adapter.threads == {host.thread_id} and host.thread_id != threading.get_ident()
    await host.aclose()
    assert host.state == CLOSED


async def test_loading_is_off_trio_and_reported_as_model_loading():
    gate = threading.Event()
    loaded_on: list[int] = []

    def slow_loader():
        loaded_on.append(threading.get_ident())
        assert gate.wait(10)
        return FakeAdapter()

    host = ModelHost("org/m", slow_loader)
    host.start()
    await wait_for(lambda: loaded_on, what="loader started")
    assert host.state == LOADING and loaded_on[0] != threading.get_ident()
    with pytest.raises(ModelLoading) as err:
        await host.encode(["a"])
    assert err.value.status == 503 and err.value.retry_after == 5
    gate.set()
    assert await host.wait_settled() == LOADED
    assert host.load_seconds is not None
    assert (await host.encode(["a"])).vectors.shape == (1, 2)
    await host.aclose()


async def test_load_failure_is_terminal_and_kept_without_a_thread():
    def missing():
        raise ModelLoadFailed("weights for 'org/m' not found; looked in X")

    host = ModelHost("org/m", missing)
    host.start()
    assert await host.wait_settled() == FAILED
    # a failed host answers from its kept error: its thread is gone, not parked for jobs
    await wait_for(lambda: not host._thread.is_alive(), 5, "the failed host's thread ended")
    for _ in range(2):
        with pytest.raises(ModelLoadFailed, match="looked in X") as err:
            await host.encode(["a"])
        assert err.value.status == 502
    await host.aclose()


async def test_a_loader_bug_becomes_a_named_load_failure():
    host = ModelHost("org/m", lambda: 1 / 0)
    host.start()
    assert await host.wait_settled() == FAILED
    assert "ZeroDivisionError" in host.load_error.message
    await host.aclose()


async def test_bounded_queue_refuses_at_once_and_recovers():
    gate = threading.Event()
    adapter = FakeAdapter(gate)
    host = await started_host(adapter, max_pending=2)
    results = []
    async with trio.open_nursery() as nursery:
        for text in ("a", "bb"):
            nursery.start_soon(lambda t=text: _collect(host, t, results))
        await wait_for(lambda: host.pending == 2, what="two batches pending")
        with pytest.raises(QueueFull) as err:
            await host.encode(["ccc"])
        assert err.value.retry_after == 1
        gate.set()
    assert sorted(r.tolist() for r in results) == [[[1, 0]], [[2, 0]]]
    assert host.pending == 0
    await host.aclose()


async def _collect(host, text, results):
    results.append((await host.encode([text])).vectors)


async def test_adapter_errors_are_inference_errors_and_the_host_lives_on():
    host = await started_host(FakeAdapter())
    with pytest.raises(InferenceFailed, match="kaboom") as err:
        await host.encode(["boom"])
    assert err.value.code == "inference_error"
    assert (await host.encode(["ok"])).vectors.tolist() == [[2, 0]]
    await host.aclose()


async def test_cancelled_waiter_does_not_disturb_others():
    gate = threading.Event()
    adapter = FakeAdapter(gate)
    host = await started_host(adapter)
    with trio.move_on_after(0.05):
        await host.encode(["a"])            # held by the gate, then cancelled
    assert host.pending == 0
    gate.set()
    assert (await host.encode(["abcd"])).vectors.tolist() == [[4, 0]]
    await host.aclose()


async def test_close_fails_queued_batches_and_finishes_the_running_one():
    gate = threading.Event()
    adapter = FakeAdapter(gate)
    host = await started_host(adapter)
    outcomes: dict[str, object] = {}

    async def run(name, text):
        try:
            outcomes[name] = (await host.encode([text])).vectors.tolist()
        except ModelUnloaded as exc:
            outcomes[name] = exc.code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "running", "aa")
        await trio.to_thread.run_sync(adapter.started.wait)
        nursery.start_soon(run, "queued", "b")
        await wait_for(lambda: host.pending == 2, what="second batch queued")
        nursery.start_soon(host.aclose)
        await wait_for(lambda: host.state == CLOSED, what="host closing")
        gate.set()
    assert outcomes == {"running": [[2, 0]], "queued": "MODEL_NOT_LOADED"}
    with pytest.raises(ModelUnloaded):
        await host.encode(["x"])


async def test_then_runs_on_the_host_thread_before_trio_hears_of_the_result():
    """The direct path: what `then` returns (here: where and with what it ran) comes back as
    `followup`, and it ran on the host's own thread with the computed vectors."""
    host = await started_host(FakeAdapter())
    result = await host.encode(["abcd"], then=lambda r: (threading.get_ident(),
                                                         r.vectors.tolist()))
    assert result.followup == (host.thread_id, [[4, 0]])
    assert host.thread_id != threading.get_ident()
    plain = await host.encode(["ab"])
    assert plain.followup is None
    await host.aclose()


@pytest.mark.parametrize("then_wakes", [False, True])
async def test_a_failing_then_is_an_inference_failure_and_the_host_lives_on(then_wakes):
    """Also when `then` owned the wake-up (`then_wakes`): failing, it never called it, so the
    host wakes trio itself."""
    host = await started_host(FakeAdapter())

    def broken(_result, *_wake):
        raise ValueError("cannot send")

    with pytest.raises(InferenceFailed, match="ValueError: cannot send"):
        await host.encode(["ab"], then=broken, then_wakes=then_wakes)
    assert (await host.encode(["abc"])).vectors.tolist() == [[3, 0]]
    await host.aclose()


async def test_submit_from_another_thread_then_result_in_trio():
    """The fast lane's way: a batch submitted from a thread that is not trio's (the NATS
    loop's), awaited in trio; the pending count is kept across both."""
    host = await started_host(FakeAdapter())
    job = await trio.to_thread.run_sync(host.submit, ["abcd"])
    assert host.pending == 1
    assert (await host.result(job)).vectors.tolist() == [[4, 0]]
    assert host.pending == 0
    await host.aclose()


async def test_a_wake_asked_for_inside_then_waits_until_its_followup_is_stored():
    """`then_wakes`: `then` may wake trio before it has returned (its send finished on another
    thread first); trio must still see what `then` returned, never a result without it."""
    host = await started_host(FakeAdapter())
    woken, proceed = threading.Event(), threading.Event()

    def then(result, wake):
        wake()
        woken.set()
        proceed.wait(10)          # returns once the test has looked at trio
        return "followup"

    results: list = []

    async def run() -> None:
        results.append(await host.encode(["ab"], then=then, then_wakes=True))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_for(woken.is_set, what="then asked for the wake-up")
        await trio.testing.wait_all_tasks_blocked()
        assert results == []      # asked, but `then` has not returned yet
        proceed.set()
    assert results[0].followup == "followup"
    await host.aclose()


async def test_here_if_idle_computes_on_the_callers_thread_when_nothing_else_runs():
    adapter = FakeAdapter()
    host = await started_host(adapter)
    try:
        def submit_here():
            job = host.submit(["abc"], then=lambda result: threading.get_ident(),
                              here_if_idle=True)
            return job, threading.get_ident()
        job, caller = await trio.to_thread.run_sync(submit_here)   # a thread like the loop's
        result = await host.result(job)
        assert result.followup == caller != host.thread_id
        assert adapter.threads == {caller} and result.vectors.tolist() == [[3.0, 0.0]]
        assert host.pending == 0
    finally:
        await host.aclose()


async def test_here_if_idle_queues_behind_a_batch_that_is_running():
    gate = threading.Event()
    adapter = FakeAdapter(gate)
    host = await started_host(adapter)
    try:
        running = host.submit(["held"])
        await trio.to_thread.run_sync(adapter.started.wait, 10)
        queued = await trio.to_thread.run_sync(
            lambda: host.submit(["x"], then=lambda r: threading.get_ident(), here_if_idle=True))
        assert not queued.done.is_set()      # it did not run on the caller's thread meanwhile
        gate.set()
        assert (await host.result(queued)).followup == host.thread_id
        await host.result(running)
    finally:
        gate.set()
        await host.aclose()

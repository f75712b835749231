"""The trio <-> asyncio bridge on the process's one loop thread: results, errors, cancellation
both ways, back-pressure without blocking the loop, fsspec sharing the loop, clean stop."""

from __future__ import annotations

import asyncio
import threading

import fsspec.asyn
import pytest
import trio

from sie_actors.aio import loop_thread
from sie_actors.aio.bridge import AsyncioCancelled, BridgeClosed, open_asyncio_bridge
from sie_actors.aio.detached import wait_detached
from sie_actors.procs.polling import wait_for


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sie-asyncio"]


async def test_run_returns_result_and_raises_errors_on_the_loop_thread():
    async def where(x):
        await asyncio.sleep(0)
        return x * 2, threading.current_thread().name

    async def boom():
        raise ValueError("from asyncio")

    async with open_asyncio_bridge() as bridge:
        assert await bridge.run(where, 21) == (42, "sie-asyncio")
        with pytest.raises(ValueError, match="from asyncio"):
            await bridge.run(boom)
        with pytest.raises(TypeError):
            await bridge.run(len, "not a coroutine function")


async def test_trio_cancellation_cancels_the_asyncio_task_before_returning():
    seen: list[str] = []

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async with open_asyncio_bridge() as bridge:
        with trio.move_on_after(0.05) as scope:
            await bridge.run(forever)
        assert scope.cancelled_caught
        assert seen == ["cancelled"]  # already finished on the loop when run() gave up


async def test_a_task_cancelled_on_the_loop_surfaces_as_an_ordinary_exception():
    async def self_cancel():
        asyncio.current_task().cancel()
        await asyncio.sleep(1)

    async with open_asyncio_bridge() as bridge:
        with pytest.raises(AsyncioCancelled):
            await bridge.run(self_cancel)


async def test_feed_applies_back_pressure_without_blocking_the_loop():
    send, receive = trio.open_memory_channel[int](1)
    async with open_asyncio_bridge() as bridge:
        feed = bridge.feed(send, window=4)

        async def produce():
            for i in range(50):
                await feed.send(i)

        async def ping():
            return "pong"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(bridge.run, produce)
            # The channel is full and the window too: the producer waits; the loop still
            # serves other calls, and no more than the window is held in between.
            await wait_for(lambda: send.statistics().tasks_waiting_send == 1
                           and len(feed._queue) == 4, 5, "producer held by the window")
            assert await bridge.run(ping) == "pong"
            assert len(feed._queue) == 4
            got = [await receive.receive() for _ in range(50)]
        assert got == list(range(50))  # nothing dropped, order kept


async def test_feed_burst_keeps_order_and_costs_few_wakeups():
    send, receive = trio.open_memory_channel[int](1000)
    async with open_asyncio_bridge() as bridge:
        feed = bridge.feed(send)
        drains = []
        original = feed._drain
        feed._drain = lambda: (drains.append(1), original())

        async def burst():
            for i in range(200):
                await feed.send(i)
            await feed.flush()

        await bridge.run(burst)
        assert [receive.receive_nowait() for _ in range(200)] == list(range(200))
        assert len(drains) < 200        # one wake-up drains whatever has piled up


async def test_feed_to_a_closed_channel_raises_on_the_asyncio_side():
    send, receive = trio.open_memory_channel[int](0)
    await receive.aclose()
    async with open_asyncio_bridge() as bridge:
        feed = bridge.feed(send)

        async def produce():
            try:
                await feed.send(1)     # handed over; trio finds the channel broken
                await feed.flush()
            except trio.BrokenResourceError:
                return "broken"
            return "delivered"

        assert await bridge.run(produce) == "broken"


async def test_call_trio_runs_in_trio_and_returns_to_asyncio():
    async def in_trio(x):
        await trio.sleep(0)
        return x + 1, threading.current_thread() is threading.main_thread()

    async with open_asyncio_bridge() as bridge:
        async def from_asyncio():
            return await bridge.call_trio(in_trio, 1)

        assert await bridge.run(from_asyncio) == (2, True)


async def test_calls_into_trio_after_the_bridge_closed_fail_cleanly():
    async with open_asyncio_bridge() as bridge:
        outer = loop_thread.acquire()  # keep the loop alive past the bridge
    try:
        async def late():
            await bridge.call_trio(trio.sleep, 0)

        future = outer.submit(late())
        with pytest.raises(BridgeClosed):
            await trio.to_thread.run_sync(future.result, 5)
    finally:
        await trio.to_thread.run_sync(loop_thread.release, outer)


async def test_one_loop_serves_fsspec_and_the_last_lease_stops_its_thread():
    assert loop_threads() == []
    async with open_asyncio_bridge() as first:
        async with open_asyncio_bridge() as second:
            assert first.loop is second.loop
            assert fsspec.asyn.get_loop() is first.loop  # no second IO thread for fsspec
            assert len(loop_threads()) == 1
        assert len(loop_threads()) == 1  # the first lease still holds it
        loop = first.loop
    assert loop_threads() == []
    assert loop.is_closed()
    assert fsspec.asyn.loop[0] is None


async def test_wait_detached_gives_up_without_cancelling_the_work():
    finished = []

    async def slow():
        await asyncio.sleep(0.2)
        finished.append(True)
        return "late"

    async def impatient():
        task_count = len(asyncio.all_tasks())
        try:
            await wait_detached(slow(), 0.01)
        except TimeoutError:
            pass
        else:
            raise AssertionError("no timeout")
        assert len(asyncio.all_tasks()) == task_count + 1  # the work still runs on its own
        return await wait_detached(asyncio.sleep(0, "soon"), 1)

    async with open_asyncio_bridge() as bridge:
        assert await bridge.run(impatient) == "soon"
        await wait_for(lambda: finished == [True], 5, "the detached work finished")

"""Calls across the trio/asyncio line, both ways, built only on trio's own thread primitives.

`open_asyncio_bridge()` leases the process's asyncio loop thread (`loop_thread`) for as long as
a trio task needs it and yields an `AsyncioBridge` with two doors:

    await bridge.run(async_fn, *args)        trio -> asyncio: run a coroutine function on the
                                             loop and await its result in trio. Cancelling the
                                             trio side cancels the asyncio task and waits
                                             (briefly) until it has really finished.
    await bridge.call_trio(async_fn, *args)  asyncio -> trio: from code running on the loop (a
    await bridge.send(channel, item)         nats-py callback), run a trio function, or put an
                                             item into a trio memory channel, and await the
                                             outcome on the loop. A full channel makes the
                                             callback wait (back-pressure) without blocking the
                                             loop's other work; nothing is dropped.

`run` is deliberately generic: nats-py's core client and its JetStream context (pull subscribe,
fetch, ack) are all coroutine functions, so any of them is one `bridge.run(...)` away.

How the waiting works, with no thread parked per call: the asyncio task's done-callback wakes
the trio side through the trio token (`run_sync_soon`), and a trio-side result reaches the loop
through `call_soon_threadsafe`. The trio side of `call_trio` runs as a trio system task, tracked
by the bridge, so closing the bridge cancels whatever is still waiting to be delivered and the
body of the `async with` is not wrapped in a nursery (its exceptions stay as they are).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import outcome
import trio

from sie_actors.aio import loop_thread
from sie_actors.aio.loop_thread import LoopThread

T = TypeVar("T")

log = logging.getLogger("sie_actors.aio.bridge")

# After the trio side of `run` is cancelled, how long it waits for the asyncio task to finish
# its own cancellation (so that, e.g., a cancelled connect is over before the client is closed).
CANCEL_GRACE = 2.0


class BridgeClosed(Exception):
    """The other side is gone: the loop is closed, or the trio side has shut down."""


class AsyncioCancelled(Exception):
    """The asyncio task was cancelled on the loop by something other than our trio caller."""


class AsyncioBridge:
    def __init__(self, thread: LoopThread, token: trio.lowlevel.TrioToken) -> None:
        self._thread = thread
        self._token = token
        self._pending: set[trio.CancelScope] = set()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._thread.loop

    # ---- trio -> asyncio --------------------------------------------------------------------
    async def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run `async_fn(*args, **kwargs)` as a task on the loop; its result or exception here."""
        done = trio.Event()
        box: dict[str, Any] = {}
        token = self._token

        def wake() -> None:  # on the loop thread
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass  # the trio side is gone; nobody is waiting

        def report(task: asyncio.Task) -> None:  # on the loop thread
            box["outcome"] = outcome.capture(task.result)
            wake()

        def start() -> None:  # on the loop thread
            try:
                task = self._thread.loop.create_task(async_fn(*args, **kwargs))
            except BaseException as exc:  # not a coroutine function, bad arguments, ...
                box["outcome"] = outcome.Error(exc)
                wake()
                return
            box["task"] = task
            task.add_done_callback(report)

        def cancel() -> None:  # on the loop thread; after start(), as call_soon keeps order
            task = box.get("task")
            if task is not None:
                task.cancel()

        if not self._thread.call_soon(start):
            raise BridgeClosed("the asyncio loop is closed")
        try:
            await done.wait()
        except BaseException:
            self._thread.call_soon(cancel)
            with trio.CancelScope(shield=True):
                with trio.move_on_after(CANCEL_GRACE):
                    await done.wait()
            raise
        result = box["outcome"]
        if isinstance(result, outcome.Error) and isinstance(result.error, asyncio.CancelledError):
            raise AsyncioCancelled(f"{getattr(async_fn, '__qualname__', async_fn)} was "
                                   "cancelled on the asyncio loop")
        return result.unwrap()

    def start_from_thread(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """From a thread that is neither trio's nor the loop's: start `async_fn(*args)` on the
        loop without waiting for it. False when the loop is closed. Its failure is logged."""
        if self._closed:
            return False

        def start() -> None:  # on the loop thread
            task = self._thread.loop.create_task(async_fn(*args))
            task.add_done_callback(_log_failure)

        return self._thread.call_soon(start)

    # ---- asyncio -> trio (awaited on the loop) --------------------------------------------
    async def call_trio(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run trio's `async_fn(*args)` in the trio run that opened the bridge; await it here."""
        return await self._to_trio(None, async_fn, args)

    async def send(self, channel: trio.MemorySendChannel, item: Any) -> None:
        """Put `item` into a trio memory channel, waiting (on the loop) while it is full.

        Raises trio.ClosedResourceError / trio.BrokenResourceError when the channel is closed
        or has no receiver left, so the caller can stop feeding it."""

        def try_now() -> outcome.Outcome | None:  # on the trio thread
            try:
                channel.send_nowait(item)
            except trio.WouldBlock:
                return None
            except Exception as exc:
                return outcome.Error(exc)
            return outcome.Value(None)

        await self._to_trio(try_now, channel.send, (item,))

    async def _to_trio(self, fast: Callable[[], outcome.Outcome | None] | None,
                       async_fn: Callable[..., Awaitable[Any]], args: tuple) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        scopes: dict[str, Any] = {}  # touched only on the trio thread

        def settle(result: outcome.Outcome) -> None:  # on the loop thread
            if future.done():
                return
            if isinstance(result, outcome.Error):
                future.set_exception(result.error)
            else:
                future.set_result(result.value)

        def settle_from_trio(result: outcome.Outcome) -> None:
            self._thread.call_soon(settle, result)

        async def in_trio() -> None:  # a trio system task: must not raise anything but Cancelled
            result: outcome.Outcome = outcome.Error(BridgeClosed("the trio side shut down"))
            with trio.CancelScope() as scope:
                self._pending.add(scope)
                if scopes.get("abandoned") or self._closed:
                    scope.cancel()
                scopes["scope"] = scope
                try:
                    result = outcome.Value(await async_fn(*args))
                except Exception as exc:
                    result = outcome.Error(exc)
                finally:
                    self._pending.discard(scope)
                    settle_from_trio(result)

        def begin() -> None:  # on the trio thread, from run_sync_soon: must not raise
            if self._closed:
                settle_from_trio(outcome.Error(BridgeClosed("the asyncio bridge is closed")))
                return
            if fast is not None:
                result = fast()
                if result is not None:
                    settle_from_trio(result)
                    return
            try:
                trio.lowlevel.spawn_system_task(in_trio, name=async_fn)
            except RuntimeError as exc:  # the trio run is ending: "Nursery is closed"
                settle_from_trio(outcome.Error(BridgeClosed(str(exc))))

        def abandon() -> None:  # on the trio thread
            scope = scopes.get("scope")
            if scope is not None:
                scope.cancel()
            else:
                scopes["abandoned"] = True

        try:
            self._token.run_sync_soon(begin)
        except trio.RunFinishedError as exc:
            raise BridgeClosed("the trio run has finished") from exc
        try:
            return await future
        except asyncio.CancelledError:
            try:
                self._token.run_sync_soon(abandon)
            except trio.RunFinishedError:
                pass
            raise

    def _close(self) -> None:
        self._closed = True
        for scope in list(self._pending):
            scope.cancel()


@asynccontextmanager
async def open_asyncio_bridge() -> AsyncIterator[AsyncioBridge]:
    """Lease the process's asyncio loop for the body; the last lease stops its thread."""
    # acquire() may wait for a previous last holder's loop to finish stopping: off the trio thread
    thread = await trio.to_thread.run_sync(loop_thread.acquire)
    bridge = AsyncioBridge(thread, trio.lowlevel.current_trio_token())
    try:
        yield bridge
    finally:
        bridge._close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(loop_thread.release, thread)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("%s failed on the asyncio loop: %r", task.get_coro(), task.exception())

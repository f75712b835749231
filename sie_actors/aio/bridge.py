"""Calls across the trio/asyncio line, both ways, built only on trio's own thread primitives.

`open_asyncio_bridge()` leases the process's asyncio loop thread (`loop_thread`) for as long as
a trio task needs it and yields an `AsyncioBridge` with two doors:

    await bridge.run(async_fn, *args)        trio -> asyncio: run a coroutine function on the
                                             loop and await its result in trio. Cancelling the
                                             trio side cancels the asyncio task and waits
                                             (briefly) until it has really finished.
    await bridge.call_trio(async_fn, *args)  asyncio -> trio: from code running on the loop (a
                                             nats-py callback), run a trio function and await
                                             its outcome on the loop.
    await bridge.feed(channel).send(item)    asyncio -> trio: put items into a trio memory
                                             channel, in order, without a round trip per item;
                                             a full channel makes the sender wait
                                             (back-pressure) without blocking the loop's other
                                             work; nothing is dropped.

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
import collections
import logging
import threading
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

    def start_from_thread(self, async_fn: Callable[..., Awaitable[Any]], *args: Any,
                          after: Callable[[], None] | None = None) -> bool:
        """From a thread that is not trio's (a model host's, or the loop's own): start
        `async_fn(*args)` on the loop without waiting for it. False when the loop is closed.
        Its failure is logged. `after()` runs on the loop when it has ended, either way, after
        what its last step scheduled (a nats-py publish's wake-up of the connection's writer,
        for one). On the loop's own thread the task is created at once: no wake-up to send."""
        if self._closed:
            return False

        def start() -> None:  # on the loop thread
            task = self._thread.loop.create_task(async_fn(*args))
            task.add_done_callback(_log_failure)
            if after is not None:
                task.add_done_callback(lambda _task: after())

        if threading.current_thread() is self._thread.thread:
            start()
            return True
        return self._thread.call_soon(start)

    # ---- asyncio -> trio (awaited on the loop) --------------------------------------------
    async def call_trio(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run trio's `async_fn(*args)` in the trio run that opened the bridge; await it here."""
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

    def feed(self, channel: trio.MemorySendChannel, window: int = 256) -> "ChannelFeed":
        """A way to put items into a trio memory channel from the loop (see `ChannelFeed`)."""
        return ChannelFeed(self, channel, window)

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


class ChannelFeed:
    """Items from the asyncio loop into one trio memory channel: in order, never dropped, with
    at most `window` handed over and not yet in the channel (then `send` waits).

    Why not one `call_trio` per item: that is two thread wake-ups per message (there and back),
    and a subscription that brings 32 results of one request paid 64 of them, one after another.
    Here `send` appends to a deque and wakes trio only when no drain is already scheduled, so a
    burst costs one wake-up; the loop is woken back only when a sender waits for room.

    A closed channel is reported to the `send` after trio found it closed (the item that found it
    so is dropped with the rest: nobody reads that channel any more)."""

    def __init__(self, bridge: AsyncioBridge, channel: trio.MemorySendChannel,
                 window: int) -> None:
        self._bridge = bridge
        self._channel = channel
        self._window = max(1, window)
        self._queue: collections.deque = collections.deque()   # appended on the loop only
        self._scheduled = False
        self._sender_running = False                           # trio side only
        self._room: asyncio.Event | None = None                # a loop-side waiter, if any
        self._error: BaseException | None = None

    # ---- on the loop --------------------------------------------------------------------
    async def send(self, item: Any) -> None:
        await self._wait_until(self._window - 1)
        self._queue.append(item)
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self._drain)

    async def flush(self) -> None:
        """Wait until every item sent so far is in the channel (or the channel failed)."""
        await self._wait_until(0)

    async def _wait_until(self, limit: int) -> None:
        while True:
            self._raise_if_failed()
            if len(self._queue) <= limit:
                return
            room = asyncio.Event()
            self._room = room
            if len(self._queue) <= limit or self._error is not None:
                continue        # trio made room (or failed) before it could see the waiter
            await room.wait()

    def _raise_if_failed(self) -> None:
        if self._bridge._closed:
            raise BridgeClosed("the asyncio bridge is closed")
        if self._error is not None:
            raise self._error

    def _schedule(self, fn: Callable[[], None]) -> None:
        try:
            self._bridge._token.run_sync_soon(fn)
        except trio.RunFinishedError as exc:
            raise BridgeClosed("the trio run has finished") from exc

    # ---- on the trio thread -------------------------------------------------------------
    def _drain(self) -> None:
        self._scheduled = False
        if self._sender_running:
            return              # the sender task takes the rest, in order
        while self._queue:
            try:
                self._channel.send_nowait(self._queue[0])
            except trio.WouldBlock:
                self._start_sender()
                break
            except Exception as exc:   # closed or broken: nobody reads this channel any more
                self._fail(exc)
                return
            self._queue.popleft()
        self._wake_waiter()

    def _start_sender(self) -> None:
        self._sender_running = True
        try:
            trio.lowlevel.spawn_system_task(self._send_rest, name="ChannelFeed")
        except RuntimeError as exc:    # the trio run is ending
            self._sender_running = False
            self._fail(BridgeClosed(str(exc)))

    async def _send_rest(self) -> None:
        with trio.CancelScope() as scope:
            self._bridge._pending.add(scope)
            try:
                while self._queue:
                    await self._channel.send(self._queue[0])
                    self._queue.popleft()
                    self._wake_waiter()
            except Exception as exc:
                self._fail(exc)
            finally:
                self._bridge._pending.discard(scope)
                self._sender_running = False
        if scope.cancelled_caught:
            self._fail(BridgeClosed("the trio side shut down"))

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._queue.clear()
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        room = self._room
        if room is not None and (len(self._queue) < self._window or self._error is not None):
            self._room = None
            self._bridge._thread.call_soon(room.set)

"""The process's one asyncio event loop, running in a thread of its own, held by leases.

Our code is trio; two libraries we use are asyncio-only: nats-py, and fsspec's async backends
(s3fs, gcsfs). Both get the same real asyncio loop (a plain `asyncio.new_event_loop()`, no
policy games), run by one thread that this module owns. One loop rather than one per user,
because fsspec keeps its loop in a process-wide slot (`fsspec.asyn.loop[0]` and `iothread[0]`)
and would otherwise start a second, never-stopped thread of its own; we fill that slot with ours.

Who owns the thread: nobody in particular, by design. Every user holds a *lease* for as long as
it needs the loop (a NATS session for the length of `NatsLink.run`, an fsspec store until it is
closed); the first lease starts the thread, the last release stops it. Stopping is a clean
`asyncio.run`-style shutdown: leftover tasks are cancelled and awaited, async generators and the
default executor are shut down, the loop is closed and the thread joined, and fsspec's slot is
emptied so a later store gets a fresh loop. So a process that is done with asyncio has no thread
left behind and no "Task was destroyed but it is pending" on its way out.

Trio code never touches this loop directly: it goes through `sie_actors.aio.bridge`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Coroutine

log = logging.getLogger("sie_actors.aio")

STOP_TIMEOUT = 10.0  # a loop that does not finish its cleanup in this long is left as a daemon


class LoopThread:
    """One asyncio loop run forever by one daemon thread, until `stop()`."""

    def __init__(self, name: str = "sie-asyncio") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Schedule `coro` on the loop from any other thread (the blocking-caller entry point)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, fn, *args) -> bool:
        """Run `fn(*args)` on the loop thread soon; False when the loop is already closed."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # "Event loop is closed"
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the loop (cancelling what still runs on it) and wait for the thread to end."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("the asyncio loop thread cannot stop itself")
        self.call_soon(self.loop.stop)
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("asyncio loop thread did not stop within %.0f s", timeout)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """What `asyncio.run` does on exit: cancel every task left and let each see its cancel."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("asyncio task %r ended with %r at shutdown", task, task.exception())


# ---- the process-wide instance and its leases ------------------------------------------------
_lock = threading.Lock()
_current: LoopThread | None = None
_leases = 0


def acquire() -> LoopThread:
    """Take a lease on the process's loop thread, starting it if nobody holds one."""
    global _current, _leases
    with _lock:
        if _current is None:
            _current = LoopThread()
            _offer_to_fsspec(_current)
        _leases += 1
        return _current


def release(loop_thread: LoopThread) -> None:
    """Give a lease back; the last one stops the loop and joins its thread (blocking)."""
    global _current, _leases
    with _lock:
        if loop_thread is not _current or _leases <= 0:
            return  # a stale lease on a loop that was already stopped
        _leases -= 1
        if _leases:
            return
        _current = None
        _withdraw_from_fsspec(loop_thread)
        loop_thread.stop()


def running() -> LoopThread | None:
    """The loop thread if some lease holds it (for tests and diagnostics)."""
    return _current


def _offer_to_fsspec(loop_thread: LoopThread) -> None:
    """Make fsspec's async backends use our loop instead of starting an IO thread of their own.

    If fsspec already made a loop of its own (only if something used its async API before any
    lease), filesystems built on it keep it; filesystems made from now on get ours."""
    import fsspec.asyn

    with fsspec.asyn.get_lock():
        fsspec.asyn.loop[0] = loop_thread.loop
        fsspec.asyn.iothread[0] = loop_thread.thread


def _withdraw_from_fsspec(loop_thread: LoopThread) -> None:
    import fsspec.asyn

    with fsspec.asyn.get_lock():
        if fsspec.asyn.loop[0] is loop_thread.loop:
            fsspec.asyn.loop[0] = None
            fsspec.asyn.iothread[0] = None

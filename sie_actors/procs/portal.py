"""One trio loop in a daemon thread, so sync code can drive the trio `Child`.

Why a portal: the sync process API (test fixtures, `sie-bench`, sync tools) must run the very
same `Child` as `sie-cluster` and `sie-chaos`, not a second `subprocess.Popen` layer. A
`trio.Process` belongs to the loop that opened it (its pidfd is registered with that loop), so
every process the sync API starts lives in one long-lived loop: started on first use in a daemon
thread, stopped at interpreter exit. A sync call hands its function to that loop and blocks on a
`concurrent.futures.Future` until the loop has run it.

Why not anyio's `BlockingPortal` (the well-kept library for this): it hands work over with
`trio.from_thread.run_sync`, which refuses to run in a thread that is itself inside a trio loop
("this is a blocking function; call it from a thread", anyio 4.16 with trio 0.35), and that is
exactly where fixtures are called: many pytest-trio tests call `nats_server.kill()` or
`spawn(...)` synchronously. `TrioToken.run_sync_soon` is thread-safe and has no such check, so
this portal is that call plus a Future. (Blocking a caller's trio loop while a process starts or
stops is what those tests did before with `subprocess`; they accept it.)
"""

from __future__ import annotations

import atexit
import concurrent.futures
import inspect
import os
import threading
from typing import Any, Callable

import trio


class Portal:
    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._closing: trio.Event | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main, started),
                                        name="sie-procs-portal", daemon=True)
        self._thread.start()
        started.wait()

    async def _main(self, started: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._closing = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            started.set()
            await self._closing.wait()
            nursery.cancel_scope.cancel()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in the portal's loop (awaited if it is async); its result or exception."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("Portal.call from the portal's own loop would wait for itself")
        future: concurrent.futures.Future = concurrent.futures.Future()

        async def run() -> None:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    result = await result
            except trio.Cancelled:
                future.set_exception(RuntimeError("the process portal closed during the call"))
                raise
            except BaseException as exc:  # noqa: BLE001 - every outcome goes to the caller
                future.set_exception(exc)
            else:
                future.set_result(result)

        try:
            self._token.run_sync_soon(self._nursery.start_soon, run)
        except trio.RunFinishedError:
            raise RuntimeError("the process portal is closed") from None
        return future.result()

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._token.run_sync_soon(self._closing.set)
        except trio.RunFinishedError:
            return
        self._thread.join(timeout)


_portal: Portal | None = None
_portal_pid: int | None = None
_lock = threading.Lock()


def portal() -> Portal:
    """The process's portal, started on first use (again in a forked child: threads do not
    survive a fork)."""
    global _portal, _portal_pid
    with _lock:
        if _portal is None or _portal_pid != os.getpid():
            _portal, _portal_pid = Portal(), os.getpid()
            atexit.register(_portal.close)
        return _portal


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """`portal().call(fn, *args)`."""
    return portal().call(fn, *args)

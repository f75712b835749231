"""Waiting for an asyncio coroutine with a deadline, without cancelling it at the deadline.

`asyncio.wait_for` cancels what it waits for when time runs out. Some library code cannot take
that: nats-py's `flush()` leaves its PONG future in a list, and when a late PONG arrives (a
paused server resumes) it calls `set_result` on the cancelled future; the InvalidStateError
ends the client's read loop, and the connection is dead until missed PINGs force a reconnect.
Here the coroutine runs on as a task of its own and finishes (or fails) in its own time; its
outcome is always retrieved, so a late failure leaves no "exception was never retrieved".
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


async def wait_detached(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """The coroutine's result, or TimeoutError after `timeout` s (the coroutine carries on).

    Cancelling the caller does not cancel the coroutine either."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_retrieve)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise TimeoutError(f"no result within {timeout} s")
    return task.result()


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()

"""Waiting for a condition with a deadline, in trio code (the sync twin is `procs.wait_until`).

The one polling loop of the test suite and tools: every wait names what it waits for and fails
with TooSlowError at its deadline, instead of sleeping a guessed amount.
"""

from __future__ import annotations

import inspect

import trio


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition",
                   interval: float = 0.01):
    """Await `predicate()` (sync or async) until truthy and return that value; TooSlowError
    after `timeout` seconds."""
    with trio.fail_after(timeout):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await trio.sleep(interval)

"""Waiting for a condition with a deadline: `wait_until` in sync code, `wait_for` in trio code.

The one polling loop of the services' process layer, the tools and the test suite: every wait
names what it waits for and fails at its deadline, instead of sleeping a guessed amount.
"""

from __future__ import annotations

import inspect
import time
from typing import Callable

import trio


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02,
               what: str = "condition") -> object:
    """Poll `predicate` until it returns a truthy value; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not answer yet
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


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

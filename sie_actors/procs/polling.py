"""Waiting for a condition with a deadline, in sync code (the trio twin is
`sie_actors.testing.waiting.wait_for`)."""

from __future__ import annotations

import time
from typing import Callable


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

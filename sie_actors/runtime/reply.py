"""A one-shot reply slot: the trio stand-in for a future.

trio has no futures on purpose (results flow through structured tasks), but an ask crosses task
boundaries: the asker waits in its own task while the actor computes the answer in another. This
slot is the smallest thing that carries one value or one exception across, and that can be
abandoned by the asker so a late reply is dropped instead of kept alive.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

T = TypeVar("T")

_PENDING = object()


class ReplySlot(Generic[T]):
    """Holds at most one outcome; the first writer wins, later writes are ignored."""

    __slots__ = ("_event", "_value", "_error", "_abandoned")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: object = _PENDING
        self._error: BaseException | None = None
        self._abandoned = False

    @property
    def done(self) -> bool:
        """True once a value or an error has been set."""
        return self._event.is_set()

    @property
    def abandoned(self) -> bool:
        """True once the asker stopped waiting (timeout or cancellation)."""
        return self._abandoned

    def set_result(self, value: T) -> bool:
        """Deliver ``value``; return False if the slot was already settled or abandoned."""
        if self._event.is_set() or self._abandoned:
            return False
        self._value = value
        self._event.set()
        return True

    def set_error(self, error: BaseException) -> bool:
        """Deliver ``error`` to be raised in the asker; False if settled or abandoned."""
        if self._event.is_set() or self._abandoned:
            return False
        self._error = error
        self._event.set()
        return True

    def abandon(self) -> None:
        """Mark the asker as gone, so any later reply is dropped rather than stored."""
        if not self._event.is_set():
            self._abandoned = True

    async def wait(self) -> T:
        """Wait for the outcome; return the value or raise the delivered error."""
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

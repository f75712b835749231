"""Exponential backoff with jitter for restart delays.

Pure and synchronous: it only computes numbers, so the supervisor decides when to sleep and tests
can check the exact sequence with a seeded ``random.Random``.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays that grow by ``multiplier`` from ``initial`` up to ``maximum``.

    Each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]`` so that many
    children failing for the same reason (a NATS outage) do not retry in lock-step. ``maximum`` is
    a hard ceiling: jitter never pushes a delay above it, so an operator can rely on "a child is
    retried at least every ``maximum`` seconds".
    """

    def __init__(
        self,
        initial: float = 0.1,
        maximum: float = 10.0,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0:
            raise ValueError(f"initial must be > 0, got {initial!r}")
        if maximum < initial:
            raise ValueError(f"maximum ({maximum!r}) must be >= initial ({initial!r})")
        if multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {multiplier!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        # A private Random by default: sharing the module-level one would let unrelated code
        # change our sequence, and seeding it in tests would leak into everything else.
        self._rng = rng if rng is not None else random.Random()
        self._base = initial
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """How many delays were handed out since construction or the last :meth:`reset`."""
        return self._attempts

    def next_delay(self) -> float:
        """Return the next delay in seconds and advance the sequence."""
        base = self._base
        # Grow incrementally and clamp, rather than computing multiplier ** attempts, so a child
        # that fails forever never overflows a float.
        self._base = min(self.maximum, base * self.multiplier)
        self._attempts += 1
        factor = 1.0 + self.jitter * self._rng.uniform(-1.0, 1.0)
        return min(self.maximum, base * factor)

    def reset(self) -> None:
        """Start again from ``initial``, e.g. after the child ran healthily for a while."""
        self._base = self.initial
        self._attempts = 0

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial!r}, maximum={self.maximum!r}, "
            f"multiplier={self.multiplier!r}, jitter={self.jitter!r}, attempts={self._attempts})"
        )

"""What the writer remembers between writes: Idempotency-Key outcomes, the ticket clock and
the epoch floor (owned by the WriterActor, never shared).

Rules (seed, reference §2.8, CONTRACT §2 item 6):
- a success (201/200) is remembered: the same key and the same body bytes replay the stored status
  and body byte for byte; the same key with other bytes is 422 `idempotency_mismatch`;
- a failure is not remembered for later retries: a retry runs again;
- but a request that was already queued while the first request with its key was in flight gets
  that request's real outcome, error included, instead of a success for a write that failed.
  "Was queued while in flight" is decided with tickets: a request carries the writer's completion
  count at the time it was sent; a failure recorded after that ticket happened while it waited.
Successes are also written to the store, so keys survive a restart.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Remembered:
    status: int
    body: bytes
    digest: str

    def to_record(self) -> dict:
        return {"status": self.status, "body": self.body.decode("utf-8"), "digest": self.digest}

    @classmethod
    def from_record(cls, record: dict) -> "Remembered | None":
        try:
            return cls(int(record["status"]), str(record["body"]).encode("utf-8"),
                       str(record["digest"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Failure:
    completed_at: int
    status: int
    body: bytes


class WriterMemory:
    """What the WriterActor must remember across its own restarts, kept outside it so a
    restarted incarnation has it: outcomes by Idempotency-Key (successes to replay, failures for
    requests that were queued behind them), the ticket clock (`completed`), and the highest epoch
    a failed commit may have left in the store (`epoch_floor`)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.completed = 0  # writes handled so far: the ticket clock
        self.epoch_floor = 0  # highest epoch a failed commit may have left in the store
        self._successes: OrderedDict[str, Remembered] = OrderedDict()
        self._failures: OrderedDict[str, Failure] = OrderedDict()

    def success(self, key: str) -> Remembered | None:
        return self._successes.get(key)

    def remember_success(self, key: str, entry: Remembered) -> None:
        self._successes[key] = entry
        self._failures.pop(key, None)
        while len(self._successes) > self.capacity:
            self._successes.popitem(last=False)

    def failure_seen_by(self, key: str, ticket: int) -> Failure | None:
        """The failure of an in-flight request with `key` that finished after `ticket`."""
        failure = self._failures.get(key)
        if failure is not None and failure.completed_at > ticket:
            return failure
        return None

    def remember_failure(self, key: str, failure: Failure) -> None:
        self._failures[key] = failure
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

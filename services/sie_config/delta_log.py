"""The deltas of sie-config's recent epochs, in memory, so a mirror that missed a few can catch up.

A gateway or worker that missed deltas (NATS down or paused, a delta refuted) used to fetch a
full snapshot: with thousands of models that is an export plus a parse of every model, 0.5-0.8 s
per resync. With this log it reads what changed since its epoch (`GET /v1/configs/deltas`) and
applies only that.

What it holds: for every epoch after the boot epoch, the deltas of that epoch exactly as they
are published on NATS (encoded once, one per affected bundle), or none for an epoch that changed
no model (sie-config adopting the store's epoch after a failed write). So it has no holes: every
change after ``base`` is in it, and "nothing logged for epoch N" means "nothing changed at N".
After a restart it starts with what `boot_log.py` recovers from the store (else it is empty,
``base`` the boot epoch). It is bounded: past ``max_epochs`` epochs
or ``max_bytes`` bytes of deltas the oldest epochs go, and ``base`` moves up to the last epoch
dropped. A question it cannot answer is `DeltasGone` (410): the mirror takes a snapshot.

Written by the WriterActor alone, in the same synchronous step that publishes the new state
(`StateCell.install`), so a reader that takes the state and the log together never sees one
without the other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.errors import DeltasGone


DEFAULT_MAX_EPOCHS = 1000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class _Epoch:
    epoch: int
    deltas: tuple[tuple[str, bytes], ...]  # (bundle_id, the delta as published)
    size: int


@dataclass(frozen=True)
class DeltaLogStats:
    base: int     # the log answers questions about epochs after this one
    last: int     # the last epoch recorded (the served epoch)
    epochs: int   # epochs held
    bytes: int    # bytes of deltas held
    dropped: int  # epochs dropped to stay within the bounds, since start


class DeltaLog:
    def __init__(self, epoch: int, generation: str, *, max_epochs: int, max_bytes: int) -> None:
        self.generation = generation
        self.max_epochs = max_epochs
        self.max_bytes = max_bytes
        self._base = epoch
        self._last = epoch
        self._entries: deque[_Epoch] = deque()
        self._bytes = 0
        self._dropped = 0

    def record(self, epoch: int, deltas: Sequence[ConfigDelta]) -> None:
        """Epoch ``epoch`` is served from now on, and these are its deltas (none: no change)."""
        if epoch <= self._last:
            # never within one generation (the epoch only grows); if it ever did, forget all
            # rather than answer from a history that no longer holds
            self._entries.clear()
            self._bytes = 0
            self._base = self._last = epoch
            return
        encoded = tuple((d.bundle_id, d.to_json_bytes()) for d in deltas)
        entry = _Epoch(epoch, encoded, sum(len(payload) for _, payload in encoded))
        self._entries.append(entry)
        self._bytes += entry.size
        self._last = epoch
        while self._entries and (len(self._entries) > self.max_epochs
                                 or self._bytes > self.max_bytes):
            dropped = self._entries.popleft()
            self._bytes -= dropped.size
            self._base = dropped.epoch
            self._dropped += 1

    def recover(self, base: int, epochs: Sequence[tuple[int, Sequence[ConfigDelta]]]) -> None:
        """At start-up, before any `record`: the log answers for epochs after ``base`` with
        these (epoch, deltas), oldest first, the last at the boot epoch (`boot_log.py` says
        why that is sound)."""
        if self._entries or not base <= self._last or not epochs \
                or epochs[-1][0] != self._last or epochs[0][0] <= base:
            raise ValueError("recover() takes epochs after base up to the boot epoch, once")
        self._base = self._last = base
        for epoch, deltas in epochs:
            self.record(epoch, deltas)

    def since(self, since: int, generation: str, bundle: str | None = None) -> list[bytes]:
        """The deltas published after epoch ``since``, in epoch order (``bundle``: only that
        bundle's), or `DeltasGone` saying why the log cannot tell."""
        if generation != self.generation:
            raise DeltasGone(f"sie-config's generation is {self.generation}, not {generation}: "
                             f"epochs of another history cannot be compared; take a snapshot.",
                             generation=self.generation)
        if since > self._last:
            raise DeltasGone(f"sie-config is at epoch {self._last}, behind epoch {since}; take "
                             f"a snapshot.", epoch=self._last)
        if since < self._base:
            raise DeltasGone(f"the delta log of sie-config starts after epoch {self._base} (it "
                             f"keeps the last {self.max_epochs} epochs and {self.max_bytes} "
                             f"bytes, from its start); epoch {since} is older: take a snapshot.",
                             oldest=self._base)
        found: list[bytes] = []
        for entry in reversed(self._entries):  # the recent end is where mirrors ask
            if entry.epoch <= since:
                break
            found.extend(payload for bundle_id, payload in reversed(entry.deltas)
                         if bundle is None or bundle_id == bundle)
        found.reverse()
        return found

    def statistics(self) -> DeltaLogStats:
        return DeltaLogStats(self._base, self._last, len(self._entries), self._bytes,
                             self._dropped)

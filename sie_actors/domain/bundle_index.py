"""One bundle's members in hash order, with their cached hash fragments.

Why this exists: ``bundle_config_hash`` is one flat sha256 over every member of a bundle,
so a write must not re-serialize them all. Members live in sorted leaves of
``LEAF_SIZE``..``2*LEAF_SIZE`` entries; each leaf caches its comma-joined fragments, and the
hasher state before each leaf is kept. A new snapshot copies only the leaf it changes and
rehashes from that leaf on, feeding the later leaves' cached bytes: the Python work per
write is O(leaves + LEAF_SIZE), and only sha256 itself still runs over the rest of the
bundle (a flat hash cannot do better).

A ``BundleIndex`` never changes after ``freeze``; only its lazily filled hash memo does, and
filling it twice gives the same value, so sharing it between tasks is safe.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any, Iterator

LEAF_SIZE = 128
CHECKPOINT_EVERY = LEAF_SIZE  # kept for callers/tests that think in checkpoint spacing


class _Leaf:
    """A run of consecutive members; ``joined`` is filled when its index is frozen."""

    __slots__ = ("names", "fragments", "joined")

    def __init__(self, names: list[str], fragments: list[bytes]) -> None:
        self.names = names
        self.fragments = fragments
        self.joined: bytes | None = None

    def copy(self) -> _Leaf:
        return _Leaf(list(self.names), list(self.fragments))


class BundleIndex:
    """Immutable member list of one bundle: sorted model ids and their hash fragments."""

    __slots__ = ("_leaves", "_firsts", "_count", "_checkpoints", "_digest")

    def __init__(self, leaves: list[_Leaf], checkpoints: list[Any]) -> None:
        self._leaves = leaves
        self._firsts = [leaf.names[0] for leaf in leaves]
        self._count = sum(len(leaf.names) for leaf in leaves)
        # _checkpoints[j]: hasher state after "[" and leaves [0, j) (without the comma
        # before leaf j). Never updated in place: always .copy() first.
        self._checkpoints = checkpoints
        self._digest: str | None = None

    @classmethod
    def empty(cls) -> BundleIndex:
        return cls([], [])

    @classmethod
    def from_sorted(cls, items: list[tuple[str, bytes]]) -> BundleIndex:
        """An index from members already in name order (a worker's filtered registry)."""
        leaves = [
            _Leaf([n for n, _ in chunk], [f for _, f in chunk])
            for chunk in (items[i : i + LEAF_SIZE] for i in range(0, len(items), LEAF_SIZE))
        ]
        for leaf in leaves:
            leaf.joined = b",".join(leaf.fragments)
        return cls(leaves, [])

    def __len__(self) -> int:
        return self._count

    def _locate(self, model_id: str) -> tuple[_Leaf, int] | None:
        i = bisect.bisect_right(self._firsts, model_id) - 1
        if i < 0:
            return None
        leaf = self._leaves[i]
        j = bisect.bisect_left(leaf.names, model_id)
        if j < len(leaf.names) and leaf.names[j] == model_id:
            return leaf, j
        return None

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self._locate(model_id) is not None

    def names(self) -> Iterator[str]:
        """Member model ids in hash order (Python string order)."""
        for leaf in self._leaves:
            yield from leaf.names

    def fragment(self, model_id: str) -> bytes | None:
        found = self._locate(model_id)
        return None if found is None else found[0].fragments[found[1]]

    def hexdigest(self) -> str:
        """The bundle's ``bundle_config_hash``; computed once per snapshot."""
        if self._digest is None:
            self._digest = self._compute()
        return self._digest

    def _compute(self) -> str:
        leaves = self._leaves
        if not leaves:
            return ""
        # A private copy, published by one assignment at the end: two threads hashing the
        # same snapshot must not interleave appends to a shared list.
        checkpoints = self._checkpoints[: len(leaves)]
        if not checkpoints:
            checkpoints.append(hashlib.sha256(b"["))
        j = len(checkpoints) - 1
        hasher = checkpoints[j].copy()
        while True:
            if j:
                hasher.update(b",")
            hasher.update(leaves[j].joined)  # type: ignore[arg-type]
            j += 1
            if j == len(leaves):
                break
            checkpoints.append(hasher.copy())
        self._checkpoints = checkpoints
        hasher.update(b"]")
        return hasher.hexdigest()

    def evolve(self) -> BundleIndexBuilder:
        """A builder that starts from this index and shares what it does not change."""
        return BundleIndexBuilder(self)


class BundleIndexBuilder:
    """Mutable copy-on-write view used while one new snapshot is being built."""

    __slots__ = ("_base", "_leaves", "_firsts", "_owned", "_first_change")

    def __init__(self, base: BundleIndex) -> None:
        self._base = base
        self._leaves = list(base._leaves)
        self._firsts = list(base._firsts)
        self._owned: set[_Leaf] = set()  # leaves this builder made and may still mutate
        self._first_change = len(self._leaves)

    def _own(self, i: int) -> _Leaf:
        leaf = self._leaves[i]
        if leaf not in self._owned:
            leaf = self._leaves[i] = leaf.copy()
            self._owned.add(leaf)
        self._first_change = min(self._first_change, i)
        return leaf

    def put(self, model_id: str, fragment: bytes) -> None:
        """Insert or replace a member."""
        if not self._leaves:
            leaf = _Leaf([model_id], [fragment])
            self._leaves.append(leaf)
            self._firsts.append(model_id)
            self._owned.add(leaf)
            self._first_change = 0
            return
        i = max(bisect.bisect_right(self._firsts, model_id) - 1, 0)
        current = self._leaves[i]
        j = bisect.bisect_left(current.names, model_id)
        if j < len(current.names) and current.names[j] == model_id:
            if current.fragments[j] == fragment:
                return
            self._own(i).fragments[j] = fragment
            return
        leaf = self._own(i)
        leaf.names.insert(j, model_id)
        leaf.fragments.insert(j, fragment)
        self._firsts[i] = leaf.names[0]
        if len(leaf.names) > 2 * LEAF_SIZE:
            tail = _Leaf(leaf.names[LEAF_SIZE:], leaf.fragments[LEAF_SIZE:])
            del leaf.names[LEAF_SIZE:], leaf.fragments[LEAF_SIZE:]
            self._leaves.insert(i + 1, tail)
            self._firsts.insert(i + 1, tail.names[0])
            self._owned.add(tail)

    def discard(self, model_id: str) -> None:
        if not self._leaves:
            return
        i = max(bisect.bisect_right(self._firsts, model_id) - 1, 0)
        current = self._leaves[i]
        j = bisect.bisect_left(current.names, model_id)
        if j == len(current.names) or current.names[j] != model_id:
            return
        leaf = self._own(i)
        del leaf.names[j], leaf.fragments[j]
        if leaf.names:
            self._firsts[i] = leaf.names[0]
        else:
            del self._leaves[i], self._firsts[i]

    def freeze(self) -> BundleIndex:
        base = self._base
        if not self._owned:
            return base  # nothing changed
        for leaf in self._leaves:
            if leaf.joined is None:
                leaf.joined = b",".join(leaf.fragments)
        # Checkpoint j covers leaves [0, j): still valid while j <= the first changed leaf.
        keep = list(base._checkpoints[: self._first_change + 1])
        frozen = BundleIndex(list(self._leaves), keep)
        # Later edits through this builder must copy again: the index now shares the leaves.
        self._owned = set()
        self._base = frozen
        self._first_change = len(self._leaves)
        return frozen

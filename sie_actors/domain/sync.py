"""How a mirror (gateway or worker) judges an incoming delta or sie-config's epoch report.

One rule for both consumers (CONTRACT §2 item 1): deltas are applied strictly in epoch order; a
copy of a write already applied is a duplicate; anything that reveals a hole (a gap, another
generation, hashes that disagree at the same epoch) means the mirror cannot trust its state and
must resync from sie-config at once, instead of papering over the hole by taking the max epoch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ParseError
from .jsonbytes import load_object


@dataclass(frozen=True)
class MirrorPosition:
    """Where a mirror stands: the last applied epoch, of which generation ("" while unknown)."""

    epoch: int = 0
    generation: str = ""


class DeltaVerdict(enum.Enum):
    APPLY = "apply"              # the next write: apply it, then check the hash it carries
    DUPLICATE = "duplicate"      # a copy of the last write (N copies per write on _all)
    STALE = "stale"              # older than what we have (a late replay after a reconnect)
    GAP = "gap"                  # at least one write is missing between ours and this one
    GENERATION = "generation"    # the epoch sequence restarted on sie-config


def judge_delta(position: MirrorPosition, epoch: int, generation: str) -> DeltaVerdict:
    """Generation first: after sie-config restarts its sequence, a lower epoch is news.

    A side that does not know a generation ("" from an original sie-config, or a mirror that has
    not bootstrapped yet) skips that check.
    """
    if generation and position.generation and generation != position.generation:
        return DeltaVerdict.GENERATION
    if epoch == position.epoch + 1:
        return DeltaVerdict.APPLY
    if epoch == position.epoch:
        return DeltaVerdict.DUPLICATE
    if epoch < position.epoch:
        return DeltaVerdict.STALE
    return DeltaVerdict.GAP


def never_written(epoch: int, generation: str, source_epoch: int, source_generation: str) -> bool:
    """Does sie-config's position (a snapshot or an epoch read), asked after a delta arrived,
    prove the delta was never written? sie-config persists before it publishes, so any answer
    it gives afterwards reaches the delta's epoch within the delta's generation."""
    if generation and source_generation and generation != source_generation:
        return True
    return epoch > source_epoch


class HeldVerdict(enum.Enum):
    """What sie-config's epoch, read after a held delta arrived, makes of it."""

    PROVEN = "proven"          # at its epoch sie-config's hash is the one it leads to: apply
    CONFIRMED = "confirmed"    # go on as before (a gap fetches; a disagreeing hash fetches)
    REFUTED = "refuted"        # never written (or not as it says): drop it
    SUPERSEDED = "superseded"  # sie-config is past it; its own delta of that epoch is in flight


def judge_held(verdict: DeltaVerdict, report: EpochReport, *, epoch: int, generation: str,
               delta_hash: str, result_hash: str, bundle: str) -> HeldVerdict:
    """Judge a delta that did not prove itself by sie-config's epoch, read after it arrived.

    A report behind the delta's epoch or on another generation refutes it (`never_written`).
    sie-config hashes every delta it publishes and reports every bundle's hash, so a delta
    without one is not its. At the delta's epoch the hashes decide (the delta's own hash
    matching sie-config's while ours does not: sie-config's write on a base we got wrong, which
    the hash check then fetches). Past it, the next delta cannot be told from a
    forgery and need not be: sie-config's own delta of that epoch is in flight, and the report
    is judged next as a poll. A gap or a generation sie-config has reached is fetched: deltas
    come in order, so one was lost. A report without hashes (an original sie-config) vouches by
    its epoch alone. `result_hash`: our hash of `bundle` with the delta applied (a duplicate:
    as we stand).
    """
    if never_written(epoch, generation, report.epoch, report.generation):
        return HeldVerdict.REFUTED
    remote = report.bundle_config_hashes.get(bundle) if bundle else None
    if not remote:
        return HeldVerdict.CONFIRMED
    if not delta_hash:
        return HeldVerdict.REFUTED
    if verdict in (DeltaVerdict.GAP, DeltaVerdict.GENERATION):
        if report.epoch > epoch or delta_hash == remote:
            return HeldVerdict.CONFIRMED
        return HeldVerdict.REFUTED
    if report.epoch > epoch:
        return HeldVerdict.SUPERSEDED
    if result_hash == remote:
        return HeldVerdict.PROVEN
    return HeldVerdict.CONFIRMED if delta_hash == remote else HeldVerdict.REFUTED


def hash_agrees(expected: str, own: str) -> bool:
    """After applying a delta: does our hash match the producer's? An empty one is not checked."""
    return not expected or expected == own


@dataclass(frozen=True)
class EpochReport:
    """sie-config's `GET /v1/configs/epoch` (`generation` and the per-bundle hashes are ours;
    an original sie-config sends neither)."""

    epoch: int
    generation: str = ""
    bundles_hash: str = ""
    bundle_config_hashes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: bytes | str | Mapping[str, Any]) -> "EpochReport":
        body = load_object(body, "epoch response")
        epoch = body.get("epoch", 0)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ParseError("epoch response: 'epoch' must be a non-negative integer")
        generation = body.get("generation") or ""
        bundles_hash = body.get("bundles_hash") or ""
        if not isinstance(generation, str) or not isinstance(bundles_hash, str):
            raise ParseError("epoch response: 'generation' and 'bundles_hash' must be strings")
        hashes = body.get("bundle_config_hashes") or {}
        if not isinstance(hashes, Mapping):
            raise ParseError("epoch response: 'bundle_config_hashes' must be an object")
        return cls(epoch, generation, bundles_hash,
                   {k: v for k, v in hashes.items() if isinstance(v, str)})


class Drift(enum.Enum):
    NONE = "none"
    EPOCH_AHEAD = "epoch_ahead"          # sie-config has writes we lack
    EPOCH_BEHIND = "epoch_behind"        # sie-config's epoch went backwards (no generation known)
    GENERATION = "generation"
    BUNDLES = "bundles_hash"
    BUNDLE_CONFIG = "bundle_config_hash"
    MIRROR_AHEAD = "mirror_ahead"        # sie-config is behind an epoch we held before asking


def judge_epoch(position: MirrorPosition, report: EpochReport, *,
                own_bundles_hash: str | None = None,
                own_bundle_hashes: Mapping[str, str] | None = None,
                held: MirrorPosition | None = None) -> Drift:
    """Compare our position with sie-config's report.

    A report *behind* us within a known generation may be a race: it left sie-config before
    deltas we applied since. `held` is where we stood when the question was sent: the epoch
    never goes back within a generation (CONTRACT §2 item 7), so an answer behind *that* is no
    race but proof that we hold something sie-config never wrote (a forged or corrupt delta),
    and is drift like being behind. Hashes are compared only at equal epochs, for the same
    reason. `own_bundles_hash` None skips the bundle-set check (a worker knows one bundle).
    """
    if report.generation and report.generation != position.generation:
        return Drift.GENERATION
    if report.epoch > position.epoch:
        return Drift.EPOCH_AHEAD
    if report.epoch < position.epoch:
        if not report.generation:
            return Drift.EPOCH_BEHIND
        if (held is not None and held.generation == report.generation
                and report.epoch < held.epoch):
            return Drift.MIRROR_AHEAD
        return Drift.NONE
    if (own_bundles_hash is not None and report.bundles_hash
            and report.bundles_hash != own_bundles_hash):
        return Drift.BUNDLES
    for bundle, own in (own_bundle_hashes or {}).items():
        remote = report.bundle_config_hashes.get(bundle)
        if remote is not None and remote != own:
            return Drift.BUNDLE_CONFIG
    return Drift.NONE

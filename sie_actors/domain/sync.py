"""How a mirror (gateway or worker) judges an incoming delta or an observed epoch.

One rule for both consumers (CONTRACT §2 item 1): deltas are applied strictly in epoch order; a
copy of the write already applied is a duplicate; anything that reveals a hole (a gap, another
generation, an epoch behind ours on the source) means the mirror cannot trust its state and must
resync from sie-config at once, instead of papering over the hole by taking the max epoch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping


class DeltaVerdict(enum.Enum):
    APPLY = "apply"              # the next write: apply it, then check the hash it carries
    DUPLICATE = "duplicate"      # a copy of a write already applied (N copies per write on _all)
    STALE = "stale"              # older than what we have (a late replay after a reconnect)
    GAP = "gap"                  # at least one write is missing between ours and this one
    GENERATION = "generation"    # the epoch sequence restarted on sie-config


@dataclass(frozen=True)
class MirrorPosition:
    """Where a mirror stands: the last applied epoch of which generation."""

    epoch: int
    generation: str


def judge_delta(position: MirrorPosition, epoch: int, generation: str) -> DeltaVerdict:
    # An original sie-config sends no generation: then only epochs can be compared.
    if generation and position.generation and generation != position.generation:
        return DeltaVerdict.GENERATION
    if epoch == position.epoch + 1:
        return DeltaVerdict.APPLY
    if epoch == position.epoch:
        return DeltaVerdict.DUPLICATE
    if epoch < position.epoch:
        return DeltaVerdict.STALE
    return DeltaVerdict.GAP


class Drift(enum.Enum):
    NONE = "none"
    EPOCH_AHEAD = "epoch_ahead"          # sie-config has writes we lack
    EPOCH_BEHIND = "epoch_behind"        # sie-config's epoch went backwards
    GENERATION = "generation"
    BUNDLES = "bundles_hash"
    BUNDLE_CONFIG = "bundle_config_hash"


def judge_epoch(position: MirrorPosition, bundles_hash: str, remote: Mapping,
                own_bundle_hashes: Mapping[str, str] | None = None) -> Drift:
    """Compare our position with sie-config's `/v1/configs/epoch` body.

    `own_bundle_hashes`: the bundle hashes we compute, checked against the remote's
    `bundle_config_hashes` for the bundles both sides know (absent on an original sie-config).
    """
    remote_generation = remote.get("generation") or ""
    remote_epoch = remote.get("epoch", 0)
    if not isinstance(remote_epoch, int) or isinstance(remote_epoch, bool):
        remote_epoch = 0
    if remote_generation and position.generation and remote_generation != position.generation:
        return Drift.GENERATION
    if remote_epoch > position.epoch:
        return Drift.EPOCH_AHEAD
    if remote_epoch < position.epoch:
        return Drift.EPOCH_BEHIND
    remote_bundles = remote.get("bundles_hash") or ""
    if remote_bundles and remote_bundles != bundles_hash:
        return Drift.BUNDLES
    remote_hashes = remote.get("bundle_config_hashes")
    if own_bundle_hashes is not None and isinstance(remote_hashes, Mapping):
        for bundle, own in own_bundle_hashes.items():
            if bundle in remote_hashes and remote_hashes[bundle] != own:
                return Drift.BUNDLE_CONFIG
    return Drift.NONE

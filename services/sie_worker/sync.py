"""The worker's sync rules as pure functions: what to do with a delta, an epoch observation or a
bundle snapshot. No I/O, no clock: the BundleConfigActor calls these and acts on the answer, so
the rules can be tested one by one.

The worker's position in sie-config's history is ``(epoch, generation)``. Deltas must arrive as
``epoch = local + 1`` of the same generation; anything else is a duplicate (ignored) or a sign
that something was missed (resync from sie-config's bundle snapshot, CONTRACT §2 items 1, 2, 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence


from sie_actors.domain.bundle import Bundle, bundle_from_mapping
from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.errors import ParseError
from sie_actors.domain.jsonbytes import load_object
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import parse_export
from sie_actors.domain.sync import (DeltaVerdict, Drift, EpochReport, MirrorPosition, judge_delta,
                                    judge_epoch)


def classify_delta(position: MirrorPosition, delta: ConfigDelta,
                   bundle: str) -> DeltaVerdict | None:
    """The shared delta rule (`domain.sync.judge_delta`); None for a delta addressed to another
    bundle (which should never arrive on our subject, and is ignored if it does)."""
    if delta.bundle_id and delta.bundle_id != bundle:
        return None
    return judge_delta(position, delta.epoch, delta.generation)


def drift_cause(position: MirrorPosition, own_hash: str, report: EpochReport,
                bundle: str) -> str | None:
    """Why the worker must resync after an epoch report (`domain.sync.judge_epoch`), or None."""
    drift = judge_epoch(position, report, own_bundle_hashes={bundle: own_hash})
    return None if drift is Drift.NONE else drift.value


@dataclass(frozen=True)
class BundleSnapshot:
    """sie-config's bundle-scoped export (``/v1/configs/bundles/{bundle}/export``), parsed."""

    epoch: int
    generation: str
    bundle: Bundle
    bundle_config_hash: str
    model_configs: tuple[dict[str, Any], ...]
    skipped: tuple[tuple[str, str], ...] = ()


def parse_bundle_snapshot(body: bytes | str | Mapping[str, Any], bundle: str) -> BundleSnapshot:
    """Parse and check the snapshot; ``ParseError`` if it is not one for ``bundle``."""
    obj = load_object(body, "bundle snapshot")
    export = parse_export(obj)
    raw_bundle = obj.get("bundle")
    if not isinstance(raw_bundle, Mapping):
        raise ParseError("bundle snapshot: 'bundle' must be an object")
    parsed = bundle_from_mapping(dict(raw_bundle), bundle)
    if parsed.name != bundle:
        raise ParseError(f"bundle snapshot is for bundle {parsed.name!r}, not {bundle!r}")
    expected = obj.get("bundle_config_hash", "")
    if not isinstance(expected, str):
        raise ParseError("bundle snapshot: 'bundle_config_hash' must be a string")
    return BundleSnapshot(export.epoch, export.generation, parsed, expected,
                          export.model_configs, export.skipped)


def registry_from_snapshot(snapshot: BundleSnapshot,
                           local_bundles: Sequence[Bundle]) -> Registry:
    """The worker's registry after a (re)bootstrap: the snapshot's bundle and models only.

    sie-config is authoritative, so nothing of the seed's models survives. The other bundles
    known locally are kept so that a later delta for a model spanning several bundles validates
    here as it did on sie-config; they do not change this bundle's hash, whose fragments leave
    out profiles of other bundles' adapters.
    """
    bundles = [b for b in local_bundles if b.name != snapshot.bundle.name]
    bundles.append(snapshot.bundle)
    return Registry.build(bundles, snapshot.model_configs).filter_to_bundle(snapshot.bundle.name)


def replay_order(deltas: Sequence[ConfigDelta]) -> list[ConfigDelta]:
    """Buffered deltas in the order to re-examine them after a snapshot: by epoch, first copy."""
    seen: set[tuple[str, int]] = set()
    ordered: list[ConfigDelta] = []
    for delta in sorted(deltas, key=lambda d: d.epoch):
        key = (delta.generation, delta.epoch)
        if key in seen:
            continue
        seen.add(key)
        ordered.append(delta)
    return ordered

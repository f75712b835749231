"""Catching a mirror up from sie-config's delta log, as data: parse the answer, apply, verify.

`GET /v1/configs/deltas?since=E&generation=G[&bundle=B]` answers the deltas sie-config
published after epoch ``E`` (the same objects as on NATS; with ``bundle``, that bundle's subject
only) together with sie-config's epoch report. A mirror at ``E`` applies them to the registry
it holds, with the protocol's own `append_delta`, and keeps the result only when its hashes are
the ones sie-config reports, the same judgement an epoch poll makes (`sync.judge_epoch`). So a
catch-up either yields exactly sie-config's scope at its epoch or is refused
(`CatchUpRefused`), and the source then takes a full snapshot: a wrong answer can cost time,
never correctness.

Pure: the snapshot source calls :func:`catch_up` in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .delta import ConfigDelta
from .errors import DomainError, ParseError
from .jsonbytes import load_object
from .mirror_protocol import CATCHUP, DeltaNotApplied, MirrorSnapshot, MirrorView, append_delta
from .model_config import parse_stored_model_yaml
from .registry import Registry
from .sync import Drift, EpochReport, MirrorPosition, judge_epoch

DELTAS_PATH = "/v1/configs/deltas"
DELTAS_GONE = "deltas_gone"  # the error code of sie-config's 410: take a snapshot instead


class CatchUpRefused(Exception):
    """The answer cannot bring this mirror to sie-config's state: ``reason`` is a short label
    (for the log line of the fallback), the message says what did not fit."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class DeltasAnswer:
    """sie-config's answer: the deltas after ``since``, in epoch order, and its epoch report."""

    since: int
    report: EpochReport
    deltas: tuple[ConfigDelta, ...]

    @classmethod
    def parse(cls, body: bytes) -> "DeltasAnswer":
        """`ParseError` for anything that is not a well-typed answer."""
        obj = load_object(body, "deltas response")
        since = obj.get("since")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise ParseError("deltas response: 'since' must be a non-negative integer")
        items = obj.get("deltas")
        if not isinstance(items, list):
            raise ParseError("deltas response: 'deltas' must be a list")
        deltas = tuple(ConfigDelta.from_mapping(item) for item in items)
        return cls(since, EpochReport.parse(obj), deltas)


def catch_up(view: MirrorView, answer: DeltasAnswer, bundle: str | None,
             parse_model: Callable[[str], object] = parse_stored_model_yaml) -> MirrorSnapshot:
    """``view``'s registry with the answer's deltas applied, as a snapshot at sie-config's
    epoch; `CatchUpRefused` unless the result carries sie-config's hashes.

    ``bundle`` None: a gateway (every bundle; ``_all`` carries one copy of a write per affected
    bundle, applied once); else a worker of that bundle. The answer must continue exactly where
    the mirror stands (same generation, ``since`` = our epoch) and hold only deltas of that
    generation, after ``since`` and up to the reported epoch, in epoch order. One epoch holds
    one write, sent once per affected bundle, except in a log recovered after a restart, where
    writes whose order the store could not tell share an epoch (`sie_config/boot_log.py`).
    """
    report = answer.report
    position = view.position
    if not view.bootstrapped or not position.generation:
        raise CatchUpRefused("no_position", "the mirror has no snapshot to catch up from")
    if answer.since != position.epoch or report.generation != position.generation:
        raise CatchUpRefused(
            "mismatch", f"the answer continues epoch {answer.since} of generation "
                        f"{report.generation or '-'}; the mirror is at epoch {position.epoch} of "
                        f"{position.generation}")
    if report.epoch < answer.since:
        raise CatchUpRefused("behind", f"sie-config's epoch {report.epoch} is behind "
                                       f"{answer.since}")
    registry = view.registry
    last = answer.since
    applied: set[str] = set()  # the models applied at epoch ``last``
    for delta in answer.deltas:
        if (delta.generation != report.generation or delta.epoch < last
                or not answer.since < delta.epoch <= report.epoch):
            raise CatchUpRefused("malformed", f"delta epoch {delta.epoch} (generation "
                                              f"{delta.generation or '-'}) out of place after "
                                              f"epoch {last}")
        if bundle is not None and delta.bundle_id != bundle:
            raise CatchUpRefused("malformed", f"delta epoch {delta.epoch} is bundle "
                                              f"{delta.bundle_id!r}'s, not {bundle!r}'s")
        if delta.epoch != last:
            applied.clear()
        elif delta.model_id in applied:
            continue  # another bundle's copy of a write just applied
        try:
            registry = append_delta(registry, delta, parse_model)
        except DeltaNotApplied as exc:
            raise CatchUpRefused("apply_failed", f"delta epoch {delta.epoch} for "
                                                 f"{delta.model_id} did not apply: {exc}") from None
        last = delta.epoch
        applied.add(delta.model_id)
    expected = _verify(registry, report, bundle)
    return MirrorSnapshot(registry, report.epoch, report.generation, expected, path=CATCHUP)


def _verify(registry: Registry, report: EpochReport, bundle: str | None) -> str:
    """The hash sie-config reports for the scope, once ours is proven equal to it."""
    if bundle is None:
        expected = report.bundles_hash
        own_bundles, own_hashes = registry.bundles_hash, registry.bundle_config_hashes()
        complete = bool(expected) and set(report.bundle_config_hashes) == set(own_hashes)
    else:
        expected = report.bundle_config_hashes.get(bundle, "")
        own_bundles, own_hashes = None, {bundle: registry.bundle_config_hash(bundle)}
        complete = bundle in report.bundle_config_hashes
    if not complete:
        raise CatchUpRefused("unverifiable", "sie-config's report lacks the hashes to check the "
                                             "result against")
    drift = judge_epoch(MirrorPosition(report.epoch, report.generation), report,
                        own_bundles_hash=own_bundles, own_bundle_hashes=own_hashes)
    if drift is not Drift.NONE:
        raise CatchUpRefused("hash_mismatch", f"after the deltas our {drift.value} differs from "
                                              f"sie-config's at epoch {report.epoch}")
    return expected


def parse_answer(body: bytes) -> DeltasAnswer:
    """`DeltasAnswer.parse`, refused as ``malformed`` instead of raising a `DomainError`."""
    try:
        return DeltasAnswer.parse(body)
    except DomainError as exc:
        raise CatchUpRefused("malformed", f"deltas response: {exc.message}") from None

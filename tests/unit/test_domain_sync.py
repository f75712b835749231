from __future__ import annotations

import pytest

from sie_actors.domain.errors import ParseError
from sie_actors.domain.sync import (DeltaVerdict, Drift, EpochReport, MirrorPosition, hash_agrees,
                                    judge_delta, judge_epoch)

AT5 = MirrorPosition(epoch=5, generation="g1")


@pytest.mark.parametrize("epoch, generation, verdict", [
    (6, "g1", DeltaVerdict.APPLY),
    (5, "g1", DeltaVerdict.DUPLICATE),
    (4, "g1", DeltaVerdict.STALE),
    (7, "g1", DeltaVerdict.GAP),
    (6, "g2", DeltaVerdict.GENERATION),
    (1, "g2", DeltaVerdict.GENERATION),
    (6, "", DeltaVerdict.APPLY),  # an original sie-config sends no generation
])
def test_judge_delta(epoch, generation, verdict):
    assert judge_delta(AT5, epoch, generation) is verdict


def test_a_lost_delta_is_never_masked():
    """The original sets epoch := max(seen): 6 lost, 7 arrives, 7 == remote, never recovered."""
    assert judge_delta(AT5, 7, "g1") is DeltaVerdict.GAP


def test_fresh_mirror_adopts_the_first_generation():
    assert judge_delta(MirrorPosition(0, ""), 1, "g9") is DeltaVerdict.APPLY


def test_hash_agrees():
    assert hash_agrees("abc", "abc") and not hash_agrees("abc", "abd")
    assert hash_agrees("", "anything")  # a producer that sends no hash is not checked


def report(epoch=5, generation="g1", bundles_hash="h", **hashes) -> EpochReport:
    return EpochReport(epoch, generation, bundles_hash, hashes)


@pytest.mark.parametrize("remote, drift", [
    (report(), Drift.NONE),
    (report(epoch=6), Drift.EPOCH_AHEAD),
    (report(epoch=3), Drift.NONE),  # an answer older than deltas applied since: a race
    (report(epoch=3, generation=""), Drift.EPOCH_BEHIND),  # no generation: trust the epoch
    (report(generation="g2"), Drift.GENERATION),
    (report(epoch=1, generation="g2"), Drift.GENERATION),
    (report(bundles_hash="other"), Drift.BUNDLES),
    (report(bundles_hash=""), Drift.NONE),
    (report(default="x"), Drift.BUNDLE_CONFIG),
    (report(default="mine", other="y"), Drift.NONE),
    (report(epoch=6, default="x"), Drift.EPOCH_AHEAD),
])
def test_judge_epoch(remote, drift):
    assert judge_epoch(AT5, remote, own_bundles_hash="h",
                       own_bundle_hashes={"default": "mine"}) is drift


def test_judge_epoch_without_bundle_set_check():
    assert judge_epoch(AT5, report(bundles_hash="other")) is Drift.NONE


def test_a_mirror_without_generation_learns_it_by_resync():
    assert judge_epoch(MirrorPosition(0, ""), report(epoch=0)) is Drift.GENERATION


def test_parse_report():
    parsed = EpochReport.parse(b'{"epoch": 3, "generation": "g", "bundles_hash": "b",'
                               b' "bundle_config_hashes": {"default": "d", "x": 5}}')
    assert parsed == EpochReport(3, "g", "b", {"default": "d"})
    assert EpochReport.parse(b'{"epoch": 0, "bundles_hash": ""}') == EpochReport(0)
    for bad in (b"[]", b"nope", b'{"epoch": -1}', b'{"epoch": true}',
                b'{"epoch": 1, "bundle_config_hashes": ["x"]}', b'{"generation": 5}'):
        with pytest.raises(ParseError):
            EpochReport.parse(bad)


def test_source_behind_an_epoch_we_held_before_asking_is_drift():
    """Defect 8: a forged `epoch+1` delta left a gateway at 41 while sie-config said 40."""
    assert judge_epoch(AT5, report(epoch=4), held=MirrorPosition(5, "g1")) is Drift.MIRROR_AHEAD
    # the answer left sie-config before the delta we applied since: a race, not drift
    assert judge_epoch(AT5, report(epoch=4), held=MirrorPosition(4, "g1")) is Drift.NONE
    assert judge_epoch(AT5, report(epoch=4), held=MirrorPosition(5, "g0")) is Drift.NONE

from __future__ import annotations

import pytest

from sie_actors.domain.sync import DeltaVerdict, Drift, MirrorPosition, judge_delta, judge_epoch

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


@pytest.mark.parametrize("remote, drift", [
    ({"epoch": 5, "generation": "g1", "bundles_hash": "h"}, Drift.NONE),
    ({"epoch": 6, "generation": "g1", "bundles_hash": "h"}, Drift.EPOCH_AHEAD),
    ({"epoch": 3, "generation": "g1", "bundles_hash": "h"}, Drift.EPOCH_BEHIND),
    ({"epoch": 5, "generation": "g2", "bundles_hash": "h"}, Drift.GENERATION),
    ({"epoch": 5, "generation": "g1", "bundles_hash": "other"}, Drift.BUNDLES),
    ({"epoch": 5, "generation": "g1", "bundles_hash": ""}, Drift.NONE),
    ({"epoch": 5, "bundles_hash": "h"}, Drift.NONE),
    ({"epoch": 5, "generation": "g1", "bundles_hash": "h",
      "bundle_config_hashes": {"default": "x"}}, Drift.BUNDLE_CONFIG),
    ({"epoch": 5, "generation": "g1", "bundles_hash": "h",
      "bundle_config_hashes": {"default": "mine", "other": "y"}}, Drift.NONE),
])
def test_judge_epoch(remote, drift):
    assert judge_epoch(AT5, "h", remote, {"default": "mine"}) is drift

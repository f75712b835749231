"""sie-config's delta log: what a mirror that missed epochs can ask for, and when it must take a
snapshot instead (410 `deltas_gone`)."""

from __future__ import annotations

import orjson
import pytest

from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.errors import DeltasGone
from sie_config.delta_log import DeltaLog


def delta(epoch: int, bundle: str = "default", size: int = 10) -> ConfigDelta:
    return ConfigDelta("sie-config", bundle, epoch, "h" * 64, f"m/{epoch}", ("default",),
                       "x" * size, (bundle,), "g1")


def epochs(payloads: list[bytes]) -> list[tuple[int, str]]:
    return [(orjson.loads(p)["epoch"], orjson.loads(p)["bundle_id"]) for p in payloads]


def log_at(epoch: int = 0, **bounds: int) -> DeltaLog:
    return DeltaLog(epoch, "g1", max_epochs=bounds.get("max_epochs", 100),
                    max_bytes=bounds.get("max_bytes", 10**6))


def test_deltas_after_since_in_epoch_order_as_published():
    log = log_at()
    for epoch in (1, 2, 3):
        log.record(epoch, [delta(epoch)])
    assert log.since(1, "g1") == [delta(2).to_json_bytes(), delta(3).to_json_bytes()]
    assert log.since(3, "g1") == []  # up to date: nothing to apply, nothing gone
    assert epochs(log.since(0, "g1")) == [(1, "default"), (2, "default"), (3, "default")]


def test_a_bundle_gets_its_own_deltas_only():
    log = log_at()
    log.record(1, [delta(1, "default"), delta(1, "sglang")])
    log.record(2, [delta(2, "sglang")])
    assert epochs(log.since(0, "g1")) == [(1, "default"), (1, "sglang"), (2, "sglang")]
    assert epochs(log.since(0, "g1", "default")) == [(1, "default")]
    assert epochs(log.since(1, "g1", "sglang")) == [(2, "sglang")]


def test_epochs_without_a_change_leave_no_hole():
    """An epoch adopted after a failed write (no deltas), and an epoch number burnt (never
    logged because never served), are both answered: nothing changed there."""
    log = log_at(5)
    log.record(6, [])            # adopted from the store
    log.record(8, [delta(8)])    # 7 was burnt
    assert epochs(log.since(5, "g1")) == [(8, "default")]
    assert log.since(6, "g1") == log.since(7, "g1") == [delta(8).to_json_bytes()]
    stats = log.statistics()
    assert (stats.base, stats.last, stats.epochs) == (5, 8, 2)


def test_only_epochs_after_the_boot_epoch_are_known():
    log = log_at(7)  # a restart at epoch 7: what came before is not in memory
    with pytest.raises(DeltasGone) as gone:
        log.since(6, "g1")
    assert gone.value.status == 410 and gone.value.code == "deltas_gone"
    assert "epoch 6" in gone.value.message
    assert log.since(7, "g1") == []


def test_bounded_by_epochs_the_oldest_go_first():
    log = log_at(max_epochs=2)
    for epoch in (1, 2, 3):
        log.record(epoch, [delta(epoch)])
    assert epochs(log.since(1, "g1")) == [(2, "default"), (3, "default")]
    with pytest.raises(DeltasGone):
        log.since(0, "g1")
    stats = log.statistics()
    assert (stats.base, stats.epochs, stats.dropped) == (1, 2, 1)


def test_bounded_by_bytes():
    size = len(delta(1, size=100).to_json_bytes())
    log = log_at(max_bytes=2 * size)
    for epoch in (1, 2, 3):
        log.record(epoch, [delta(epoch, size=100)])
    assert log.statistics().bytes == 2 * size
    assert epochs(log.since(1, "g1")) == [(2, "default"), (3, "default")]
    with pytest.raises(DeltasGone):
        log.since(0, "g1")
    log.record(4, [delta(4, size=3 * size)])  # alone over the bound: gone at once
    assert log.statistics().epochs == 0
    assert log.since(4, "g1") == []
    with pytest.raises(DeltasGone):
        log.since(3, "g1")


def test_zero_bounds_keep_nothing_but_still_say_up_to_date():
    log = log_at(max_epochs=0)
    log.record(1, [delta(1)])
    assert log.since(1, "g1") == []
    with pytest.raises(DeltasGone):
        log.since(0, "g1")


def test_another_generation_or_an_epoch_ahead_is_gone():
    log = log_at()
    log.record(1, [delta(1)])
    with pytest.raises(DeltasGone) as other:
        log.since(0, "g0")
    assert "generation" in other.value.message
    with pytest.raises(DeltasGone) as ahead:
        log.since(2, "g1")
    assert "behind epoch 2" in ahead.value.message


def test_an_epoch_going_back_forgets_the_history():
    log = log_at()
    log.record(3, [delta(3)])
    log.record(2, [delta(2)])  # never happens within a generation; never answered from
    with pytest.raises(DeltasGone):
        log.since(0, "g1")
    assert log.since(2, "g1") == []

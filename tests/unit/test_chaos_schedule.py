"""The nemesis schedule: a pure function of seed and duration that covers every fault kind."""

from __future__ import annotations

from collections import Counter

import pytest

from sie_chaos.nemesis import (FAULT_KINDS, ScheduleError, ScheduleSettings, break_store,
                               plan_schedule, restore_store)

NAMES = dict(config="sie-config", nats="nats", gateways=["gateway-0", "gateway-1", "gateway-2"],
             workers=["worker-default-0", "worker-sglang-0"])


def schedule(seed: int, duration: float, **settings):
    return plan_schedule(seed, duration, **NAMES, settings=ScheduleSettings(**settings))


@pytest.mark.parametrize("seed", range(8))
def test_a_short_run_has_every_kind_at_least_twice(seed):
    faults = schedule(seed, 100)
    counts = Counter(f.kind for f in faults)
    assert set(counts) == set(FAULT_KINDS)
    assert min(counts.values()) >= 2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("duration", [43, 60, 100, 600])  # 43: the minimum for 7 kinds
def test_the_faults_fit_the_duration_in_order_without_overlap(seed, duration):
    settings = ScheduleSettings()
    faults = schedule(seed, duration)
    assert faults[0].at == pytest.approx(settings.warmup)
    for before, after in zip(faults, faults[1:]):
        assert after.at == pytest.approx(before.at + before.duration + before.gap)
        assert after.kind != before.kind
    end = faults[-1].at + faults[-1].duration + faults[-1].gap
    assert end == pytest.approx(duration - settings.tail)
    assert all(f.duration >= settings.min_fault_s and f.gap >= settings.min_gap_s
               for f in faults)
    assert [f.index for f in faults] == list(range(len(faults)))


def test_same_seed_same_schedule_and_another_seed_another():
    assert schedule(7, 600) == schedule(7, 600)
    assert schedule(7, 600) != schedule(8, 600)


def test_a_long_run_has_many_rounds_and_every_target():
    faults = schedule(7, 600)
    assert len(faults) >= 6 * 8
    counts = Counter(f.kind for f in faults)
    assert max(counts.values()) - min(counts.values()) == 0  # whole rounds
    assert {f.target for f in faults if f.kind == "gateway_kill"} == set(NAMES["gateways"])
    assert {f.target for f in faults if f.kind == "worker_kill"} == set(NAMES["workers"])


def test_targets_match_the_kind():
    for fault in schedule(1, 100):
        expected = {"nats_kill": {"nats"}, "nats_pause": {"nats"}, "config_kill": {"sie-config"},
                    "store_fail": {"store"}, "forged_deltas": {"nats"},
                    "gateway_kill": set(NAMES["gateways"]),
                    "worker_kill": set(NAMES["workers"])}[fault.kind]
        assert fault.target in expected


def test_pauses_are_long_enough_to_be_noticed_when_the_duration_allows():
    settings = ScheduleSettings()
    for fault in schedule(3, 100):
        low, high = settings.pause_s if fault.kind == "nats_pause" else settings.fault_s
        assert low <= fault.duration <= high


def test_too_short_a_duration_is_refused_with_the_minimum():
    minimum = ScheduleSettings().minimum_duration()
    with pytest.raises(ScheduleError, match=f"at least {minimum:.0f}s"):
        schedule(1, minimum - 1)
    assert len(schedule(1, minimum)) == 2 * len(FAULT_KINDS)


def test_more_rounds_can_be_required():
    counts = Counter(f.kind for f in schedule(1, 200, min_rounds=4))
    assert min(counts.values()) >= 4


def test_the_store_fault_blocks_model_writes_and_heals_intact(tmp_path):
    from sie_actors.store import ConfigStore, StoreUnavailable
    store = ConfigStore.open(str(tmp_path))
    store.commit_write("org/a", "x: 1\n", 1)
    break_store(tmp_path)
    with pytest.raises(StoreUnavailable):
        store.commit_write("org/b", "x: 2\n", 2)
    assert (tmp_path / "models").is_file()
    restore_store(tmp_path)
    restore_store(tmp_path)  # idempotent: the teardown always calls it
    assert sorted(p.name for p in tmp_path.iterdir() if "models" in p.name) == ["models"]
    assert store.read_model("org/a") == "x: 1\n" and store.read_model("org/b") is None
    store.commit_write("org/b", "x: 2\n", 3)

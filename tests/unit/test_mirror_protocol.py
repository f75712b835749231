"""Named rules of the mirror protocol, one scenario each (the property tests cover the rest)."""

from __future__ import annotations

from sie_actors.domain.mirror_protocol import (Count, DeltaReceived, EpochObserved, Fetch, Metric,
                                               MirrorProtocol, MirrorScope, Pacing,
                                               SnapshotFetched, Tick, Wake)
from tests.unit.test_mirror_protocol_properties import SEED, TRUSTED, Source, forged


def booted(bundle=None) -> tuple[MirrorProtocol, Source]:
    source = Source()
    protocol = MirrorProtocol(MirrorScope(bundle, TRUSTED), SEED, pacing=Pacing(0.2, 5.0))
    [fetch] = [a for a in protocol.start(0.0) if isinstance(a, Fetch)]
    protocol.step(SnapshotFetched(fetch.round, source.snapshot(bundle)), 0.0)
    return protocol, source


def counted(actions, metric, *labels) -> int:
    return sum(1 for a in actions if isinstance(a, Count) and a.metric is metric
               and a.labels[:len(labels)] == labels)


def test_far_future_delta_is_refuted_by_one_fetch_and_causes_no_other():
    """Defect 2: the worker refetched ~500 times a second for one forged delta."""
    for bundle in (None, "default"):
        protocol, source = booted(bundle)
        actions = protocol.step(DeltaReceived(forged(source, "far_future", 1)), 10.0)
        [fetch] = [a for a in actions if isinstance(a, Fetch)]
        actions = protocol.step(SnapshotFetched(fetch.round, source.snapshot(bundle)), 10.1)
        assert counted(actions, Metric.DELTA, "refuted") == 1
        assert not [a for a in actions if isinstance(a, Fetch)] and not protocol.syncing
        assert protocol.position.epoch == source.epoch


def test_a_delta_heard_during_the_fetch_is_not_refuted_by_it():
    protocol, source = booted("default")
    source.write(True)                          # epoch 1: another bundle's, not heard
    lost = source.write(False)                  # epoch 2: ours, lost
    actions = protocol.step(DeltaReceived(source.write(False)[0]), 10.0)  # epoch 3: a gap
    [fetch] = [a for a in actions if isinstance(a, Fetch)]
    snapshot = source.snapshot("default")       # taken at epoch 3
    newer = source.write(False)[0]              # epoch 4, heard while the fetch is in flight
    protocol.step(DeltaReceived(newer), 10.05)
    actions = protocol.step(SnapshotFetched(fetch.round, snapshot), 10.1)
    assert counted(actions, Metric.DELTA, "applied") == 1 and protocol.position.epoch == 4
    assert protocol.registry.bundle_config_hash("default") == source.registry.bundle_config_hash(
        "default") and lost


def test_repeated_causes_are_paced_until_a_poll_agrees():
    protocol, source = booted()
    fetch_times = []
    now = 1.0
    for i in range(6):
        actions = protocol.step(DeltaReceived(forged(source, "far_future", i)), now)
        while not any(isinstance(a, Fetch) for a in actions):
            [wake] = [a for a in actions if isinstance(a, Wake)] or [Wake(now)]
            now = max(now, wake.at)
            actions = protocol.step(Tick(), now)
        fetch_times.append(now)
        [fetch] = [a for a in actions if isinstance(a, Fetch)]
        protocol.step(SnapshotFetched(fetch.round, source.snapshot(None)), now)
    gaps = [b - a for a, b in zip(fetch_times, fetch_times[1:])]
    assert gaps == sorted(gaps) and gaps[-1] >= 1.6  # 0.2, 0.4, 0.8, 1.6, 3.2 (at least)
    protocol.step(EpochObserved(source.report(), protocol.position), now)  # agreement
    actions = protocol.step(DeltaReceived(forged(source, "far_future", 99)), now + 0.01)
    assert any(isinstance(a, Fetch) for a in actions)  # at once again


def test_forged_next_epoch_is_healed_by_the_poll():
    """Defect 8: applied as `forged/next`, it stayed until the next real write."""
    protocol, source = booted()
    protocol.step(DeltaReceived(forged(source, "next", 2)), 10.0)
    assert protocol.position.epoch == source.epoch + 1
    held = protocol.position
    actions = protocol.step(EpochObserved(source.report(), held), 11.0)
    [fetch] = [a for a in actions if isinstance(a, Fetch)]
    assert fetch.cause == "mirror_ahead"
    protocol.step(SnapshotFetched(fetch.round, source.snapshot(None)), 11.1)
    assert protocol.position.epoch == source.epoch
    assert protocol.registry.bundles_hash == source.registry.bundles_hash


def test_bundle_hash_mismatch_at_equal_epoch_is_drift():
    protocol, source = booted()
    source.write(False)
    protocol.position = type(protocol.position)(source.epoch, source.generation)
    actions = protocol.step(EpochObserved(source.report(), protocol.position), 5.0)
    [fetch] = [a for a in actions if isinstance(a, Fetch)]
    assert fetch.cause in ("bundles_hash", "bundle_config_hash")


def test_a_routine_poll_ahead_of_us_waits_for_deltas_in_flight_a_reconnect_poll_does_not():
    protocol, source = booted()
    late = source.write(False)                 # published, not yet delivered
    held = protocol.position
    actions = protocol.step(EpochObserved(source.report(), held, "timer"), 1.0)
    assert not [a for a in actions if isinstance(a, Fetch)]
    [wake] = [a for a in actions if isinstance(a, Wake)]
    for payload in late:
        protocol.step(DeltaReceived(payload), 1.1)  # the delta was only late
    assert not [a for a in protocol.step(Tick(), wake.at) if isinstance(a, Fetch)]
    assert protocol.position.epoch == source.epoch

    source.write(False)                        # this one is lost
    actions = protocol.step(EpochObserved(source.report(), protocol.position, "timer"), 5.0)
    [wake] = [a for a in actions if isinstance(a, Wake)]
    [fetch] = [a for a in protocol.step(Tick(), wake.at) if isinstance(a, Fetch)]
    assert fetch.cause == "epoch_ahead"
    protocol.step(SnapshotFetched(fetch.round, source.snapshot(None)), wake.at)

    source.write(False)                        # lost while NATS was away
    actions = protocol.step(EpochObserved(source.report(), protocol.position, "reconnect"), 20.0)
    assert [a.cause for a in actions if isinstance(a, Fetch)] == ["epoch_ahead"]


def test_a_worker_behind_only_by_other_bundles_writes_takes_the_epoch_without_a_fetch():
    protocol, source = booted("default")
    source.write(True)                          # other bundles' writes: not on our subject
    source.write(True)
    actions = protocol.step(EpochObserved(source.report(), protocol.position, "reconnect"), 1.0)
    assert not [a for a in actions if isinstance(a, Fetch)]
    assert protocol.position.epoch == source.epoch
    source.write(False)                         # one of ours, missed: the hash differs
    actions = protocol.step(EpochObserved(source.report(), protocol.position, "reconnect"), 2.0)
    assert [a.cause for a in actions if isinstance(a, Fetch)] == ["epoch_ahead"]


def test_polls_more_frequent_than_the_grace_do_not_postpone_the_fetch():
    protocol, source = booted()
    source.write(False)                         # lost
    wakes = []
    for i in range(5):                          # a poll every 0.3 s, grace 0.5 s
        now = 1.0 + 0.3 * i
        actions = protocol.step(Tick(), now)
        if any(isinstance(a, Fetch) for a in actions):
            break
        actions = protocol.step(EpochObserved(source.report(), protocol.position), now)
        wakes += [a.at for a in actions if isinstance(a, Wake)]
    assert any(isinstance(a, Fetch) for a in actions) and wakes == [1.5]

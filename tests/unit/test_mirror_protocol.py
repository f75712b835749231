"""Named rules of the mirror protocol, one scenario each (the property tests cover the rest)."""

from __future__ import annotations

import dataclasses

import pytest

from sie_actors.domain.mirror_protocol import (CATCHUP, FULL, Count, DeltaReceived, EpochObserved,
                                               Fetch, Metric,
                                               MirrorProtocol, MirrorScope, Pacing, Poll,
                                               SnapshotFetched, Tick, Wake)
from sie_actors.domain.sync import DeltaVerdict, EpochReport, HeldVerdict, judge_held
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


def verify_reads(actions) -> int:
    polls = [a for a in actions if isinstance(a, Poll)]
    assert all(p.trigger == "verify" for p in polls)
    return len(polls)


def answered(protocol: MirrorProtocol, source: Source, now: float, ask: int | None = None):
    """The poller's part: sie-config's epoch, read now, as the answer to the last verify read."""
    ask = (protocol.awaited_verify or 0) if ask is None else ask
    return protocol.step(EpochObserved(source.report(), protocol.position, "verify", ask), now)


def fetches(actions) -> list[Fetch]:
    return [a for a in actions if isinstance(a, Fetch)]


def test_forged_deltas_are_refuted_by_one_epoch_read_never_applied_never_fetched():
    """Defects 2 and 8, and sie-chaos's 2.8 s after a forged storm: a far-future epoch, another
    generation, a hashless or wrongly hashed `epoch+1` are held, not applied, and the read of
    sie-config's epoch that follows refutes them. No snapshot, no pacing left behind."""
    for bundle in (None, "default"):
        for how, salt in (("far_future", 1), ("wrong_generation", 2), ("next", 3), ("next", 4)):
            protocol, source = booted(bundle)
            before = (protocol.position, protocol.registry)
            actions = protocol.step(DeltaReceived(forged(source, how, salt)), 10.0)
            assert verify_reads(actions) == 1 and not fetches(actions)
            assert (protocol.position, protocol.registry) == before  # held, not shown
            actions = answered(protocol, source, 10.01)
            assert counted(actions, Metric.DELTA, "refuted") == 1, (bundle, how)
            assert not fetches(actions) and not protocol.syncing
            assert (protocol.position, protocol.registry) == before


def test_a_forged_next_racing_a_real_write_is_refuted_by_the_hash_or_superseded():
    """The forger reads sie-config's epoch and claims the next one: sie-config often writes that
    epoch itself meanwhile. Its own delta proves itself; the forgery never shows."""
    protocol, source = booted()
    fake = forged(source, "next", 2)          # the forger read epoch 0: claims epoch 1
    real = source.write(False)                # sie-config writes epoch 1 meanwhile
    assert verify_reads(protocol.step(DeltaReceived(fake), 1.0)) == 1
    actions = answered(protocol, source, 1.01)  # sie-config at 1, with another hash
    assert counted(actions, Metric.DELTA, "refuted") == 1 and not fetches(actions)
    for payload in real:
        protocol.step(DeltaReceived(payload), 1.02)
    assert protocol.position.epoch == 1
    assert protocol.registry.bundles_hash == source.registry.bundles_hash
    assert not fetches(protocol.step(Tick(), 1.01 + protocol.pacing.grace))  # caught up

    fake = forged(source, "next", 5)          # claims epoch 2, with a made-up hash;
    protocol.step(DeltaReceived(fake), 2.0)
    late = source.write(False) + source.write(False)  # sie-config then writes 2 and 3
    actions = answered(protocol, source, 2.01)  # sie-config past it: nothing can tell
    assert counted(actions, Metric.DELTA, "superseded") == 1 and not fetches(actions)
    [wake] = [a for a in actions if isinstance(a, Wake)]  # the read, judged as a poll
    for payload in late:                      # sie-config's own deltas were in flight
        protocol.step(DeltaReceived(payload), 2.02)
    assert not fetches(protocol.step(Tick(), wake.at))
    assert protocol.position.epoch == 3
    assert protocol.registry.bundles_hash == source.registry.bundles_hash


def test_an_unanswered_verify_read_falls_back_to_one_fetch():
    for bundle in (None, "default"):
        protocol, source = booted(bundle)
        actions = protocol.step(DeltaReceived(forged(source, "far_future", 1)), 10.0)
        [wake] = [a for a in actions if isinstance(a, Wake)]
        assert wake.at == 10.0 + protocol.pacing.verify_timeout
        [fetch] = fetches(protocol.step(Tick(), wake.at))
        assert fetch.cause == "unverified"
        actions = protocol.step(SnapshotFetched(fetch.round, source.snapshot(bundle)), 11.1)
        assert counted(actions, Metric.DELTA, "refuted") == 1
        assert not fetches(actions) and not protocol.syncing
        assert protocol.position.epoch == source.epoch
        # its answer, late, is only a report now
        assert not fetches(answered(protocol, source, 11.2))


def test_a_verify_read_sent_before_a_later_hold_does_not_judge_it():
    protocol, source = booted()
    protocol.step(DeltaReceived(forged(source, "far_future", 1)), 1.0)
    stale = EpochObserved(source.report(), protocol.position, "verify", protocol.awaited_verify)
    [fetch] = fetches(protocol.step(Tick(), 1.0 + protocol.pacing.verify_timeout))
    protocol.step(SnapshotFetched(fetch.round, source.snapshot(None)), 2.1)
    source.write(False)
    gap = source.write(False)                 # epoch 2 heard, epoch 1 lost: held
    assert verify_reads(protocol.step(DeltaReceived(gap[0]), 3.0)) == 1
    actions = protocol.step(stale, 3.01)      # the first read's late answer (epoch 0)
    assert not counted(actions, Metric.DELTA, "refuted") and protocol.syncing
    [fetch] = fetches(answered(protocol, source, 3.02))  # the real answer confirms the gap
    assert fetch.cause == "gap"


def test_a_delta_heard_during_the_fetch_is_not_refuted_by_it():
    protocol, source = booted("default")
    source.write(True)                          # epoch 1: another bundle's, not heard
    lost = source.write(False)                  # epoch 2: ours, lost
    actions = protocol.step(DeltaReceived(source.write(False)[0]), 10.0)  # epoch 3: a gap
    assert verify_reads(actions) == 1 and not fetches(actions)
    [fetch] = fetches(answered(protocol, source, 10.01))  # sie-config confirms: fetch
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
        source.write(False)                               # lost
        protocol.step(DeltaReceived(source.write(False)[0]), now)  # a real gap: held
        actions = answered(protocol, source, now)          # confirmed
        while not fetches(actions):
            [wake] = [a for a in actions if isinstance(a, Wake)] or [Wake(now)]
            now = max(now, wake.at)
            actions = protocol.step(Tick(), now)
        fetch_times.append(now)
        [fetch] = fetches(actions)
        protocol.step(SnapshotFetched(fetch.round, source.snapshot(None)), now)
    gaps = [b - a for a, b in zip(fetch_times, fetch_times[1:])]
    assert gaps == sorted(gaps) and gaps[-1] >= 1.6  # 0.2, 0.4, 0.8, 1.6, 3.2 (at least)
    protocol.step(EpochObserved(source.report(), protocol.position), now)  # agreement
    source.write(False)
    protocol.step(DeltaReceived(source.write(False)[0]), now + 0.01)
    assert fetches(answered(protocol, source, now + 0.02))  # at once again


def test_fetches_answered_by_catch_ups_are_not_paced_full_ones_still_are():
    """A catch-up costs sie-config no export, so it gives its step of the streak back: the same
    causes as above, answered by catch-ups, each fetch at once; answered by full snapshots
    afterwards, the spacing grows again from where the full ones left it."""
    protocol, source = booted()
    now = 1.0

    def one_round(path: str) -> tuple[float, list]:
        nonlocal now
        source.write(False)                                        # lost
        protocol.step(DeltaReceived(source.write(False)[0]), now)  # a real gap: held
        actions = answered(protocol, source, now)                  # confirmed
        asked_at = now
        while not fetches(actions):
            [wake] = [a for a in actions if isinstance(a, Wake)]
            now = max(now, wake.at)
            actions = protocol.step(Tick(), now)
        [fetch] = fetches(actions)
        assert fetch.since is not None and fetch.since.position.epoch == source.epoch - 2
        snapshot = dataclasses.replace(source.snapshot(None), path=path)
        installed = protocol.step(SnapshotFetched(fetch.round, snapshot), now)
        assert counted(installed, Metric.SNAPSHOT_INSTALLED, path) == 1
        now += 0.01
        return now - 0.01 - asked_at, installed

    waits = [one_round(CATCHUP)[0] for _ in range(6)]
    assert waits == [0.0] * 6
    waits = [one_round(FULL)[0] for _ in range(4)]
    assert waits[0] == 0.0 and waits[1:] == sorted(waits[1:]) and waits[-1] >= 0.7


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


def test_an_original_sie_config_without_hashes_vouches_by_its_epoch():
    """A mixed fleet: a report with neither generation nor hashes cannot check content, so a
    held delta its epoch reaches goes on as before (applied, and the poll judges later)."""
    protocol, source = booted()
    delta = forged(source, "next", 2)          # hashless, epoch 1
    assert verify_reads(protocol.step(DeltaReceived(delta), 1.0)) == 1
    original = EpochReport(1)                  # sie-config at epoch 1, no hashes
    actions = protocol.step(EpochObserved(original, protocol.position, "verify",
                                          protocol.awaited_verify), 1.01)
    assert counted(actions, Metric.DELTA, "applied") == 1 and protocol.position.epoch == 1


def test_a_held_delta_the_fallback_snapshot_reaches_is_answered_by_it():
    """Found by the convergence property: a forged `epoch+1` with a made-up hash, held, its
    read unanswered; sie-config writes that epoch; the fallback snapshot reaches it. The held
    delta was judged again as a duplicate with a bad hash, held again, and so on after every
    snapshot. A snapshot asked after a delta arrived answers it."""
    protocol, source = booted()
    actions = protocol.step(DeltaReceived(forged(source, "next", 1)), 1.0)
    assert verify_reads(actions) == 1
    source.write(False)
    [fetch] = fetches(protocol.step(Tick(), 1.0 + protocol.pacing.verify_timeout))
    actions = protocol.step(SnapshotFetched(fetch.round, source.snapshot(None)), 2.1)
    assert not verify_reads(actions) and not fetches(actions) and not protocol.syncing
    assert counted(actions, Metric.DELTA, "duplicate") == 1
    assert protocol.registry.bundles_hash == source.registry.bundles_hash


def test_sie_configs_own_deltas_prove_themselves_and_cost_no_read():
    """Every copy on `_all` (one per affected bundle) and every delta on a worker's subject
    carries a hash the mirror reproduces: in steady state the verify rule costs nothing."""
    for bundle in (None, "default"):
        protocol, source = booted(bundle)
        reads = 0
        for i in range(6):
            for payload in source.write(i % 2 == 0):
                if bundle is not None and b'"bundle_id":"default"' not in payload:
                    continue  # not on this worker's subject
                reads += verify_reads(protocol.step(DeltaReceived(payload), float(i)))
        assert reads == 0 and not protocol.syncing
        if bundle is None:
            assert protocol.position.epoch == source.epoch
            assert protocol.registry.bundles_hash == source.registry.bundles_hash
        else:
            assert (protocol.registry.bundle_config_hash("default")
                    == source.registry.bundle_config_hash("default"))


R = EpochReport(5, "g1", "", {"default": "H5"})   # sie-config at epoch 5, bundle hash H5
APPLY, DUP, GAP, GEN = (DeltaVerdict.APPLY, DeltaVerdict.DUPLICATE, DeltaVerdict.GAP,
                        DeltaVerdict.GENERATION)


@pytest.mark.parametrize("verdict,report,epoch,generation,delta_hash,result_hash,expected", [
    (APPLY, R, 6, "g1", "", "X", HeldVerdict.REFUTED),         # sie-config never got there
    (GAP, R, 10**12, "g1", "H", "", HeldVerdict.REFUTED),      # far future
    (GEN, R, 5, "forged", "H5", "", HeldVerdict.REFUTED),      # a generation that is not
    (APPLY, R, 5, "g1", "", "H5", HeldVerdict.REFUTED),        # no hash: not sie-config's
    (APPLY, R, 5, "g1", "F", "X", HeldVerdict.REFUTED),        # made-up hash, other content
    (APPLY, R, 5, "g1", "F", "H5", HeldVerdict.PROVEN),        # wrong hash, sie-config's content
    (APPLY, R, 5, "g1", "H5", "X", HeldVerdict.CONFIRMED),     # ours is off: the check fetches
    (DUP, R, 5, "g1", "F", "H5", HeldVerdict.PROVEN),          # a lying copy of our state
    (APPLY, R, 4, "g1", "F", "X", HeldVerdict.SUPERSEDED),     # sie-config is past it
    (GAP, R, 4, "g1", "F", "", HeldVerdict.CONFIRMED),         # past a gap: one was lost
    (GAP, R, 5, "g1", "H5", "", HeldVerdict.CONFIRMED),
    (GAP, R, 5, "g1", "F", "", HeldVerdict.REFUTED),
    (APPLY, EpochReport(5), 5, "g1", "", "X", HeldVerdict.CONFIRMED),  # an original sie-config
])
def test_judge_held(verdict, report, epoch, generation, delta_hash, result_hash, expected):
    assert judge_held(verdict, report, epoch=epoch, generation=generation, delta_hash=delta_hash,
                      result_hash=result_hash, bundle="default") is expected


def test_a_worker_behind_only_by_other_bundles_after_the_grace_takes_the_epoch():
    """Found by the forged-storm property: a verify read (or a timer poll) ahead of a worker
    waits out the grace; meanwhile the worker's own delta arrives and the rest of the way is
    other bundles' writes. It takes sie-config's epoch instead of fetching."""
    protocol, source = booted("default")
    ours = [p for p in source.write(False) if b'"bundle_id":"default"' in p]  # epoch 1, late
    source.write(True)                                                       # epoch 2, not ours
    actions = protocol.step(EpochObserved(source.report(), protocol.position, "timer"), 1.0)
    [wake] = [a for a in actions if isinstance(a, Wake)]
    protocol.step(DeltaReceived(ours[0]), 1.1)
    assert not fetches(protocol.step(Tick(), wake.at))
    assert protocol.position.epoch == source.epoch == 2


def test_the_first_answer_after_sie_config_was_away_fetches_at_once():
    """sie-config killed mid-write may have persisted an epoch it never published: no delta will
    come for it, so the grace a routine poll gives deltas in flight would only delay the heal."""
    protocol, source = booted()
    source.write(False)                        # persisted; the publish died with sie-config
    actions = protocol.step(EpochObserved(source.report(), protocol.position, "recovered"), 1.0)
    assert [a.cause for a in fetches(actions)] == ["epoch_ahead"]

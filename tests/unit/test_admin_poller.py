"""The wait loop of `status --wait`, driven by a fake clock: no network, no real sleeping."""

from __future__ import annotations

from sie_tools.admin.poller import MIN_REQUEST_TIMEOUT, Fleet
from sie_tools.admin.readiness import ReplicaReport

PENDING = ReplicaReport("g", status={"all_bundles_acked": False, "bundles": []})
ACKED = ReplicaReport("g", status={"all_bundles_acked": True, "bundles": []})


class ScriptedFleet(Fleet):
    """Answers from a script; each poll costs `poll_cost` seconds of fake time."""

    def __init__(self, script: list[ReplicaReport], clock: list[float],
                 poll_cost: float = 0.0) -> None:
        super().__init__([])
        self.script, self.clock, self.poll_cost = script, clock, poll_cost
        self.timeouts: list[float] = []

    def poll(self, model_id: str, timeout: float) -> list[ReplicaReport]:
        self.timeouts.append(timeout)
        self.clock[0] += self.poll_cost
        return [self.script[min(len(self.timeouts) - 1, len(self.script) - 1)]]


def run(fleet: ScriptedFleet, clock: list[float], **kwargs):
    shown, slept = [], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    result = fleet.wait("m", show=lambda reports, elapsed: shown.append(elapsed),
                        clock=lambda: clock[0], sleep=sleep, **kwargs)
    return result, shown, slept


def test_polls_until_acked() -> None:
    clock = [100.0]
    fleet = ScriptedFleet([PENDING, PENDING, ACKED], clock)
    result, shown, slept = run(fleet, clock, timeout=60, interval=1.0, request_timeout=5)
    assert result.acked and not result.timed_out
    assert len(fleet.timeouts) == 3 and slept == [1.0, 1.0] and shown == [0.0, 1.0, 2.0]


def test_times_out_without_sleeping_past_the_deadline() -> None:
    clock = [0.0]
    fleet = ScriptedFleet([PENDING], clock, poll_cost=0.25)
    result, _, slept = run(fleet, clock, timeout=2.0, interval=1.0, request_timeout=5)
    assert result.timed_out and not result.acked
    assert result.elapsed >= 2.0 and clock[0] <= 2.0 + 0.25
    assert all(s <= 1.0 for s in slept)
    # each request is bounded by the time left (never below the floor)
    assert fleet.timeouts[0] == 2.0
    assert all(MIN_REQUEST_TIMEOUT <= t <= 2.0 for t in fleet.timeouts)


def test_single_round_without_timeout() -> None:
    clock = [0.0]
    fleet = ScriptedFleet([PENDING], clock)
    result, shown, slept = run(fleet, clock, timeout=None, interval=1.0, request_timeout=5)
    assert not result.acked and not result.timed_out
    assert len(fleet.timeouts) == 1 and slept == [] and fleet.timeouts == [5]

"""The wait loop of `status --wait`, driven by a fake clock: no network, no real sleeping."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import trio

from sie_tools.admin.http import Endpoint
from sie_tools.admin.poller import MIN_REQUEST_TIMEOUT, Fleet, fetch_status, fetch_status_async
from sie_tools.admin.readiness import NOT_FOUND, UNREACHABLE, ReplicaReport, report_of

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


def status_transport(answers: dict[str, tuple[int, bytes]]) -> httpx.MockTransport:
    """A gateway whose `/status` answers come from `answers`, by model id."""
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        model_id = unquote(path.removeprefix("/v1/configs/models/").removesuffix("/status"))
        if model_id == "down/model":
            raise httpx.ConnectError("refused", request=request)
        status, body = answers[model_id]
        return httpx.Response(status, content=body)
    return httpx.MockTransport(handle)


ANSWERS = {
    "org/acked": (200, b'{"all_bundles_acked": true, "bundles": []}'),
    "org/pending": (200, b'{"all_bundles_acked": false, "bundles": []}'),
    "org/none": (200, b'{"all_bundles_acked": false, "no_bundles": true}'),
    "org/missing": (404, b'{"detail": {"error": "model_not_found", "message": "no such model"}}'),
    "org/proxy": (200, b"<html>proxy</html>"),
    "org/boom": (500, b"internal"),
}


def test_one_reading_of_a_status_answer_for_every_client() -> None:
    """The CLI's sync fetch and the trio tools' async fetch give the same report."""
    sync_reports = {}
    with Endpoint("gateway", "http://g", None, 1.0,
                  transport=status_transport(ANSWERS)) as gateway:
        for model_id in [*ANSWERS, "down/model"]:
            sync_reports[model_id] = fetch_status(gateway, model_id, 1.0)

    async def fetch_all() -> dict[str, ReplicaReport]:
        async with httpx.AsyncClient(transport=status_transport(ANSWERS)) as http:
            return {m: await fetch_status_async(http, "http://g/", m, 1.0)
                    for m in [*ANSWERS, "down/model"]}

    async_reports = trio.run(fetch_all)
    for model_id, report in sync_reports.items():
        twin = async_reports[model_id]
        assert (twin.gateway, twin.acked, twin.kind, twin.status) == (
            report.gateway, report.acked, report.kind, report.status), model_id
    assert [m for m, r in sync_reports.items() if r.acked] == ["org/acked"]
    assert sync_reports["org/none"].no_bundles and not sync_reports["org/pending"].no_bundles
    assert sync_reports["org/missing"].kind == NOT_FOUND
    assert "no such model" in sync_reports["org/missing"].error
    assert sync_reports["org/proxy"].error == "answer is not a JSON status object"
    assert sync_reports["org/boom"].error.startswith("HTTP 500")
    assert sync_reports["down/model"].kind == async_reports["down/model"].kind == UNREACHABLE
    assert report_of("g", 201, b'{"all_bundles_acked": true}').acked

"""`_fetch` on the loop: what a fetched batch's `start` set going there runs before the answer
goes back to trio (a one-item batch computed on the loop's thread has its reply waiting)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from sie_actors.nats.jetstream import _fetch


class Handle:
    """A pull subscription with one message waiting."""

    async def fetch(self, batch, timeout):
        return [SimpleNamespace(data=b"item", metadata=SimpleNamespace(num_delivered=1))]


def run_fetch(start):
    ran: list[str] = []

    async def main():
        deliveries, started = await _fetch(None, Handle(), 1, 1.0, start(ran))
        ran.append("answer back")
        return deliveries, started

    deliveries, started = asyncio.run(main())
    return ran, deliveries, started


def test_what_start_scheduled_runs_before_the_answer_goes_back():
    def start(ran):
        def begin(deliveries):
            asyncio.get_running_loop().call_soon(ran.append, "scheduled by start")
            return "started"
        return begin

    ran, deliveries, started = run_fetch(start)
    assert ran == ["scheduled by start", "answer back"]
    assert started == "started" and [d.data for d in deliveries] == [b"item"]


def test_a_batch_left_to_trio_goes_back_at_once():
    def start(ran):
        def decline(deliveries):
            asyncio.get_running_loop().call_soon(ran.append, "scheduled by start")
            return None
        return decline

    ran, _deliveries, started = run_fetch(start)
    assert started is None and ran[0] == "answer back"  # no turn waited for

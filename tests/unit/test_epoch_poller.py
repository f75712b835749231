"""The epoch poller's one rule of its own: a poll the mirror asked for is always answered.

Two polls queued back to back are one read when both are routine (the later one does the
work), but an asked poll carries a number the mirror waits for: a held delta's verify read
skipped because a timer poll was queued behind it left the delta held until its timeout and
cost a snapshot fetch instead of an epoch read.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from sie_actors.actors.mirror import EpochPollerActor, PollNow
from sie_actors.domain.mirror_protocol import EpochObserved
from sie_actors.domain.sync import EpochReport, MirrorPosition
from sie_actors.runtime import Mailbox


@dataclass
class Reader:
    reads: int = 0

    async def epoch(self) -> EpochReport:
        self.reads += 1
        return EpochReport(3, "g1")


class Quiet:
    def poll(self, trigger: str, result: str) -> None:
        pass


async def observed(mirror: Mailbox, count: int) -> list[EpochObserved]:
    receive = mirror.attach()
    got = []
    with trio.fail_after(5):
        while len(got) < count:
            got.append((await receive.receive()).message)
    return got


async def test_an_asked_poll_queued_before_a_timer_poll_is_answered(nursery):
    mirror = Mailbox(name="mirror")
    box = Mailbox(name="poller")
    reader = Reader()
    await box.ref.tell(PollNow("verify", 7))
    await box.ref.tell(PollNow("timer"))
    await box.ref.tell(PollNow("timer"))
    poller = EpochPollerActor(mirror.ref, reader, position=lambda: MirrorPosition(2, "g1"),
                              interval=3600.0, metrics=Quiet(), mailbox=box)
    await nursery.start(poller.run)
    first, second = await observed(mirror, 2)
    assert (first.trigger, first.ask, first.report.epoch) == ("verify", 7, 3)
    assert second.trigger == "timer" and reader.reads == 2  # the two timer polls were one

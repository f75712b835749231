"""The epoch poller's own rules.

A poll the mirror asked for is always answered: two polls queued back to back are one read
when both are routine (the later one does the work), but an asked poll carries a number the
mirror waits for (a held delta's verify read skipped because a timer poll was queued behind it
left the delta held until its timeout and cost a snapshot fetch instead of an epoch read).

A failed read is retried soon whatever asked for it, and the first answer after failures is
``recovered``: sie-config killed mid-write may have persisted an epoch it never published, and
the mirrors learn of it when sie-config is back, not at the next routine poll.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
import trio.testing

from sie_actors.actors.config_client import ConfigReadError
from sie_actors.actors.mirror import EpochPollerActor, PollNow
from sie_actors.domain.mirror_protocol import EpochObserved
from sie_actors.domain.sync import EpochReport, MirrorPosition
from sie_actors.runtime import Mailbox


@dataclass
class Reader:
    reads: int = 0
    failures: int = 0  # the first reads that fail (sie-config away)

    async def epoch(self) -> EpochReport:
        self.reads += 1
        if self.reads <= self.failures:
            raise ConfigReadError("unreachable", "sie-config is away")
        return EpochReport(3, "g1")


class Quiet:
    def poll(self, trigger: str, result: str) -> None:
        pass


async def started_poller(nursery, reader: "Reader", interval: float
                         ) -> tuple[Mailbox, Mailbox, "Reader"]:
    """A poller at local epoch 2 of generation g1, reading through `reader`; its mirror's and its
    own mailbox."""
    mirror, box = Mailbox(name="mirror"), Mailbox(name="poller")
    poller = EpochPollerActor(mirror.ref, reader, position=lambda: MirrorPosition(2, "g1"),
                              interval=interval, metrics=Quiet(), mailbox=box)
    await nursery.start(poller.run)
    return mirror, box, reader


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


async def test_a_burst_of_announcements_is_one_read(nursery):
    """sie-config's started announcements (or forged ones from a trusted name) cost one read
    per drain of the mailbox, and its answer carries the trigger the mirror acts on."""
    mirror, box, reader = Mailbox(name="mirror"), Mailbox(name="poller"), Reader()
    for _ in range(5):
        await box.ref.tell(PollNow("announce"))
    poller = EpochPollerActor(mirror.ref, reader, position=lambda: MirrorPosition(2, "g1"),
                              interval=3600.0, metrics=Quiet(), mailbox=box)
    await nursery.start(poller.run)
    [answer] = await observed(mirror, 1)
    await trio.testing.wait_all_tasks_blocked()   # every queued announcement was handled
    assert not box.pending
    assert answer.trigger == "announce" and reader.reads == 1


async def test_a_failed_routine_read_is_retried_and_its_answer_says_recovered(nursery,
                                                                           autojump_clock):
    mirror, box, reader = await started_poller(nursery, Reader(failures=4), 3600.0)
    start = trio.current_time()
    await box.ref.tell(PollNow("timer"))
    await box.ref.tell(PollNow("verify", 9))  # asked while sie-config is away
    got = await observed(mirror, 2)
    assert sorted((o.trigger, o.ask) for o in got) == [("recovered", 0), ("verify", 9)]
    assert reader.reads == 6  # four failures, then one answer for each (no pile of retries)
    # (virtual time) noticed within the retry bound, long before the next routine poll
    assert trio.current_time() - start < 4 * EpochPollerActor.RETRY_MAX


async def test_a_poller_polling_more_often_than_its_retry_bound_still_retries(nursery,
                                                                            autojump_clock):
    """A 0.1 s poll interval (tests, tight deployments) once made the retry backoff invalid
    (initial above maximum): the poller could not even be built."""
    mirror, box, reader = await started_poller(nursery, Reader(failures=2), 0.1)
    [first] = await observed(mirror, 1)
    assert first.trigger == "recovered" and reader.reads >= 3

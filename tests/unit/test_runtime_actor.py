"""Actor, Mailbox and ActorRef: ask/reply, ordering, serial processing, failure delivery."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from sie_actors.runtime import (
    Actor,
    ActorRef,
    ActorStopped,
    AskTimeout,
    Mailbox,
    MailboxFull,
    ReplySlot,
)


class Recorder(Actor):
    """Echoes asks, records every message, and can be told to misbehave."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[Any] = []
        self.release = trio.Event()
        self.entered = trio.Event()
        self.active = 0
        self.max_active = 0

    async def handle(self, message: Any) -> object:
        self.seen.append(message)
        match message:
            case ("echo", value):
                return value
            case "seen":
                return list(self.seen)
            case "fail":
                raise ValueError("bad request")
            case "block":
                self.entered.set()
                await self.release.wait()
                return "released"
            case ("work", n):
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                await trio.sleep(1)  # models work; the test runs under autojump_clock
                self.active -= 1
                return n
            case _:
                return None


async def run_capturing(actor: Actor, errors: list[BaseException], *, task_status: Any) -> None:
    """Run an actor and keep its crash for the test to inspect, instead of failing the test."""
    try:
        await actor.run(task_status=task_status)
    except Exception as exc:  # noqa: BLE001 - the point is to capture it
        errors.append(exc)


async def test_ask_returns_the_reply(nursery: trio.Nursery) -> None:
    actor = Recorder()
    await nursery.start(actor.run)
    with trio.fail_after(5):
        assert await actor.ref.ask(("echo", 42)) == 42
        assert await actor.ref.ask(("echo", "x"), timeout=None) == "x"


async def test_tells_are_handled_in_send_order(nursery: trio.Nursery) -> None:
    actor = Recorder()
    await nursery.start(actor.run)
    with trio.fail_after(5):
        for i in range(200):
            await actor.ref.tell(i)
        for i in range(200, 210):
            actor.ref.tell_nowait(i)
        seen = await actor.ref.ask("seen")
    assert seen[:-1] == list(range(210))


async def test_concurrent_asks_never_overlap_inside_handle(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Recorder()
    await nursery.start(actor.run)
    replies: list[int] = []

    async def ask(n: int) -> None:
        replies.append(await actor.ref.ask(("work", n), timeout=None))

    with trio.fail_after(100):
        async with trio.open_nursery() as askers:
            for n in range(10):
                askers.start_soon(ask, n)
    assert sorted(replies) == list(range(10))
    assert actor.max_active == 1
    # Serial processing means ten one-second jobs take ten seconds, not one.
    assert trio.current_time() >= 10


async def test_ask_times_out_and_the_late_reply_is_dropped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Recorder()
    await nursery.start(actor.run)
    with trio.fail_after(100):
        with pytest.raises(AskTimeout):
            await actor.ref.ask("block", timeout=2.0)
        assert actor.entered.is_set()
        actor.release.set()  # the handler now replies to an asker that has gone
        assert await actor.ref.ask(("echo", "still alive")) == "still alive"


async def test_ask_timeout_covers_waiting_for_room_in_a_full_mailbox(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    actor = Recorder(mailbox_size=1)
    await nursery.start(actor.run)
    nursery.start_soon(actor.ref.ask, "block", None)
    with trio.fail_after(100):
        await actor.entered.wait()
        actor.ref.tell_nowait("filler")
        with pytest.raises(AskTimeout):
            await actor.ref.ask(("echo", 1), timeout=3.0)
    assert ("echo", 1) not in actor.seen


async def test_exception_in_ask_reaches_the_asker_and_the_actor_survives(
    nursery: trio.Nursery,
) -> None:
    actor = Recorder()
    errors: list[BaseException] = []
    await nursery.start(run_capturing, actor, errors)
    with trio.fail_after(5):
        with pytest.raises(ValueError, match="bad request"):
            await actor.ref.ask("fail")
        assert await actor.ref.ask(("echo", "after")) == "after"
    assert errors == []


async def test_exception_in_tell_crashes_the_actor_and_pending_asks_fail(
    nursery: trio.Nursery,
) -> None:
    actor = Recorder()
    errors: list[BaseException] = []
    crashed = trio.Event()

    async def run_then_signal(*, task_status: Any) -> None:
        await run_capturing(actor, errors, task_status=task_status)
        crashed.set()

    await nursery.start(run_then_signal)
    outcome: list[BaseException] = []

    async def queued_ask() -> None:
        try:
            await actor.ref.ask(("echo", "never"), timeout=None)
        except ActorStopped as exc:
            outcome.append(exc)

    with trio.fail_after(5):
        await actor.ref.tell("block")
        await actor.entered.wait()
        await actor.ref.tell("fail")
        nursery.start_soon(queued_ask)
        await trio.testing.wait_all_tasks_blocked()
        assert actor.mailbox.pending == 2
        actor.release.set()
        await crashed.wait()
        # The asker queued behind the crash is woken, not left to hang forever.
        await trio.testing.wait_all_tasks_blocked()
        assert len(outcome) == 1
        with pytest.raises(ActorStopped):
            await actor.ref.ask(("echo", "late"), timeout=None)
        with pytest.raises(ActorStopped):
            await actor.ref.tell("late")
    assert [type(e) for e in errors] == [ValueError]
    assert ("echo", "never") not in actor.seen


class CrashingBackground(Recorder):
    """A background loop that fails on demand, killing the actor mid-ask."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.explode = trio.Event()
        self.bg_cancelled = False

    async def background(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._loop)

    async def _loop(self) -> None:
        await self.explode.wait()
        raise RuntimeError("poller failed")


async def test_in_flight_ask_fails_with_actor_stopped(nursery: trio.Nursery) -> None:
    actor = CrashingBackground()
    errors: list[BaseException] = []
    await nursery.start(run_capturing, actor, errors)
    result: list[BaseException] = []

    async def asker() -> None:
        try:
            await actor.ref.ask("block", timeout=None)
        except ActorStopped as exc:
            result.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as inner:
            inner.start_soon(asker)
            await actor.entered.wait()
            actor.explode.set()
    assert len(result) == 1
    assert len(errors) == 1
    assert isinstance(errors[0], ExceptionGroup)
    assert errors[0].subgroup(RuntimeError) is not None


async def test_tell_nowait_raises_mailbox_full() -> None:
    mailbox = Mailbox(2, name="small")
    ref = mailbox.ref
    ref.tell_nowait("a")
    ref.tell_nowait("b")
    with pytest.raises(MailboxFull):
        ref.tell_nowait("c")
    assert mailbox.pending == 2


async def test_tell_applies_back_pressure_until_the_actor_drains(nursery: trio.Nursery) -> None:
    mailbox = Mailbox(1, name="bp")
    sent: list[int] = []
    done = trio.Event()

    async def sender() -> None:
        for i in range(3):
            await mailbox.ref.tell(i)
            sent.append(i)
        done.set()

    with trio.fail_after(5):
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert sent == [0]  # the second tell waits for room
        actor = Recorder(mailbox=mailbox)
        await nursery.start(actor.run)
        await done.wait()
        assert await actor.ref.ask("seen", timeout=None) == [0, 1, 2, "seen"]
    assert sent == [0, 1, 2]


async def test_cancelled_asker_leaves_the_actor_unharmed(nursery: trio.Nursery) -> None:
    actor = Recorder()
    await nursery.start(actor.run)
    with trio.fail_after(5):
        with trio.CancelScope() as scope:
            async def cancel_when_entered() -> None:
                await actor.entered.wait()
                scope.cancel()

            nursery.start_soon(cancel_when_entered)
            await actor.ref.ask("block", timeout=None)
        assert scope.cancelled_caught
        actor.release.set()
        assert await actor.ref.ask(("echo", "ok")) == "ok"


async def test_stopping_a_mailbox_fails_queued_and_blocked_asks(nursery: trio.Nursery) -> None:
    mailbox = Mailbox(1, name="doomed")
    outcomes: list[str] = []

    async def ask(tag: str) -> None:
        try:
            await mailbox.ref.ask(tag, timeout=None)
        except ActorStopped:
            outcomes.append(tag)

    with trio.fail_after(5):
        nursery.start_soon(ask, "queued")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, "blocked")  # waits for room: the mailbox holds "queued"
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.pending == 1
        mailbox.stop()
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(outcomes) == ["blocked", "queued"]
    assert mailbox.stopped
    with pytest.raises(ActorStopped):
        mailbox.ref.tell_nowait("x")
    with pytest.raises(ActorStopped):
        await mailbox.ref.tell("x")


async def test_reattaching_reopens_a_stopped_mailbox(nursery: trio.Nursery) -> None:
    mailbox = Mailbox(name="phoenix")
    mailbox.stop()
    actor = Recorder(mailbox=mailbox)
    await nursery.start(actor.run)
    with trio.fail_after(5):
        assert await mailbox.ref.ask(("echo", 1)) == 1
    assert not mailbox.stopped


async def test_two_incarnations_cannot_read_one_mailbox(nursery: trio.Nursery) -> None:
    mailbox = Mailbox(name="shared")
    await nursery.start(Recorder(mailbox=mailbox).run)
    with pytest.raises(RuntimeError, match="already has a running actor"):
        await Recorder(mailbox=mailbox).run()


class Lifecycle(Actor):
    def __init__(self, log: list[str]) -> None:
        super().__init__(name="lifecycle")
        self.log = log

    async def on_start(self) -> None:
        self.log.append("on_start")

    async def on_stop(self) -> None:
        await trio.lowlevel.checkpoint()  # proves on_stop may await while being cancelled
        self.log.append("on_stop")

    async def background(self, nursery: trio.Nursery) -> None:
        async def tick() -> None:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                self.log.append("background cancelled")
                raise

        nursery.start_soon(tick)

    async def handle(self, message: Any) -> object:
        self.log.append(f"handle {message}")
        return None


async def test_hooks_run_around_the_mailbox_and_background_dies_with_the_actor() -> None:
    log: list[str] = []
    actor = Lifecycle(log)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            assert log == ["on_start"]
            await actor.ref.ask("hi")
            nursery.cancel_scope.cancel()
    assert log == ["on_start", "handle hi", "background cancelled", "on_stop"]
    # An actor that owns its mailbox takes it down with it.
    with pytest.raises(ActorStopped):
        await actor.ref.ask("anyone?")


async def test_refs_compare_by_mailbox() -> None:
    mailbox = Mailbox(name="m")
    assert mailbox.ref == ActorRef(mailbox)
    assert {mailbox.ref: 1}[ActorRef(mailbox)] == 1
    assert mailbox.ref != Mailbox(name="m").ref


async def test_reply_slot_first_outcome_wins_and_abandon_drops_late_replies() -> None:
    slot: ReplySlot[int] = ReplySlot()
    assert slot.set_result(1)
    assert not slot.set_result(2)
    assert not slot.set_error(ValueError())
    assert await slot.wait() == 1

    gone: ReplySlot[int] = ReplySlot()
    gone.abandon()
    assert not gone.set_result(3)
    assert not gone.done

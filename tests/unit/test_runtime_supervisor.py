"""Supervisor: restarts with backoff, escalation, cancellation, nesting, restart policies.

All children are in-memory fakes, so these tests run under ``autojump_clock``: backoff sleeps
take no real time and the measured delays are exact virtual-clock differences.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from sie_actors.runtime import (
    Actor,
    ActorStopped,
    Backoff,
    ChildSpec,
    Mailbox,
    Supervisor,
    SupervisorEscalation,
    actor_child,
)

# pytest-trio picks the clock from the test's own arguments (usefixtures is not enough), so every
# async test here takes ``autojump_clock`` explicitly.


class Boom(Exception):
    """A child's crash, distinguishable from anything the runtime raises."""


def seeded_backoff(seed: int = 42, **kwargs: Any) -> Callable[[], Backoff]:
    params = {"initial": 1.0, "maximum": 100.0, "multiplier": 2.0, "jitter": 0.2} | kwargs
    return lambda: Backoff(**params, rng=random.Random(seed))


def cancel_recorder(name: str, log: list[str]) -> Callable[..., Any]:
    """A well-behaved child that runs until cancelled and records that it was."""

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            log.append(name)
            raise

    return run


async def test_restarts_a_crashing_child_with_growing_backoff(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    starts: list[float] = []
    settled = trio.Event()
    crashes = 4

    async def flaky(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) <= crashes:
            raise Boom(f"crash {len(starts)}")
        settled.set()
        await trio.sleep_forever()

    notified: list[tuple[str, BaseException | None]] = []
    supervisor = Supervisor(
        "root",
        [ChildSpec("flaky", flaky)],
        max_restarts=10,
        window=1000.0,
        backoff_factory=seeded_backoff(),
        on_restart=lambda name, exc: notified.append((name, exc)),
    )
    caplog.set_level(logging.WARNING, logger="sie_actors.runtime")
    with trio.fail_after(10_000):
        await nursery.start(supervisor.run)
        await settled.wait()

    reference = seeded_backoff()()
    expected = [reference.next_delay() for _ in range(crashes)]
    measured = [b - a for a, b in zip(starts, starts[1:])]
    assert measured == pytest.approx(expected)
    assert all(later > earlier for earlier, later in zip(measured, measured[1:]))
    assert supervisor.restart_counts == {"flaky": crashes}
    assert [name for name, _ in notified] == ["flaky"] * crashes
    assert [str(exc) for _, exc in notified] == [f"crash {i}" for i in range(1, crashes + 1)]
    restart_logs = [r for r in caplog.records if "flaky" in r.getMessage()]
    assert len(restart_logs) == crashes
    assert "crash 1" in restart_logs[0].getMessage()


class Counter(Actor):
    """One incarnation of a supervised actor; logs which incarnation handled what."""

    def __init__(
        self, mailbox: Mailbox, incarnation: int, log: list[tuple[int, Any]], gate: trio.Event
    ) -> None:
        super().__init__(mailbox=mailbox)
        self.incarnation = incarnation
        self.log = log
        self.gate = gate

    async def handle(self, message: Any) -> object:
        self.log.append((self.incarnation, message))
        if message == "crash":
            await self.gate.wait()
            raise Boom("told to crash")
        return self.incarnation


async def test_ref_survives_a_restart_and_queued_messages_reach_the_new_incarnation(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    mailbox = Mailbox(name="counter")
    log: list[tuple[int, Any]] = []
    gate = trio.Event()
    incarnations = 0

    def factory(mb: Mailbox) -> Actor:
        nonlocal incarnations
        incarnations += 1
        return Counter(mb, incarnations, log, gate)

    supervisor = Supervisor(
        "root", [actor_child("counter", mailbox, factory)], backoff_factory=seeded_backoff()
    )
    ref = mailbox.ref
    with trio.fail_after(1000):
        await nursery.start(supervisor.run)
        assert await ref.ask("who", timeout=None) == 1
        await ref.tell("crash")
        await ref.tell("a")
        await ref.tell("b")
        gate.set()  # incarnation 1 crashes with "a", "b" still queued
        assert await ref.ask("who", timeout=None) == 2
    assert log == [(1, "who"), (1, "crash"), (2, "a"), (2, "b"), (2, "who")]
    assert supervisor.restart_counts == {"counter": 1}


class Poller(Actor):
    """An actor whose background loop fails (first incarnation only) while an ask is handled."""

    def __init__(
        self, mailbox: Mailbox, incarnation: int, explode: trio.Event, entered: trio.Event
    ) -> None:
        super().__init__(mailbox=mailbox)
        self.incarnation = incarnation
        self.explode = explode
        self.entered = entered

    async def background(self, nursery: trio.Nursery) -> None:
        async def loop() -> None:
            await self.explode.wait()
            if self.incarnation == 1:
                raise Boom("poll failed")
            await trio.sleep_forever()

        nursery.start_soon(loop)

    async def handle(self, message: Any) -> object:
        if message == "slow":
            self.entered.set()
            await trio.sleep_forever()
        return self.incarnation


async def test_ask_in_flight_when_a_supervised_actor_crashes_fails_then_the_next_succeeds(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    explode, entered = trio.Event(), trio.Event()
    mailbox = Mailbox(name="poller")
    incarnations = 0

    def factory(mb: Mailbox) -> Actor:
        nonlocal incarnations
        incarnations += 1
        return Poller(mb, incarnations, explode, entered)

    supervisor = Supervisor(
        "root", [actor_child("poller", mailbox, factory)], backoff_factory=seeded_backoff()
    )
    outcome: list[BaseException] = []

    async def slow_ask() -> None:
        try:
            await mailbox.ref.ask("slow", timeout=None)
        except ActorStopped as exc:
            outcome.append(exc)

    with trio.fail_after(1000):
        await nursery.start(supervisor.run)
        async with trio.open_nursery() as askers:
            askers.start_soon(slow_ask)
            await entered.wait()
            explode.set()
        assert len(outcome) == 1
        assert await mailbox.ref.ask("who", timeout=None) == 2
    assert supervisor.restart_counts == {"poller": 1}


async def test_escalates_after_too_many_failures_and_cancels_siblings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0
    cancelled: list[str] = []

    async def doomed(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        await trio.sleep(0.5)
        raise Boom(f"failure {runs}")

    supervisor = Supervisor(
        "root",
        [ChildSpec("steady", cancel_recorder("steady", cancelled)), ChildSpec("doomed", doomed)],
        max_restarts=3,
        window=60.0,
        backoff_factory=seeded_backoff(initial=0.1),
    )
    with trio.fail_after(1000), pytest.raises(SupervisorEscalation) as info:
        await supervisor.run()
    assert info.value.child == "doomed"
    assert info.value.supervisor == "root"
    assert isinstance(info.value.__cause__, Boom)
    assert str(info.value.__cause__) == "failure 4"
    assert runs == 4
    assert supervisor.restart_counts == {"steady": 0, "doomed": 3}
    assert cancelled == ["steady"]


async def test_failures_spread_wider_than_the_window_never_escalate(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    runs = 0
    enough = trio.Event()

    async def slow_crasher(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        if runs > 8:
            enough.set()
            await trio.sleep_forever()
        await trio.sleep(6.0)  # models work; then fails, at most twice per 10 s window
        raise Boom("periodic")

    supervisor = Supervisor(
        "root",
        [ChildSpec("periodic", slow_crasher)],
        max_restarts=2,
        window=10.0,
        backoff_factory=lambda: Backoff(initial=0.01, maximum=0.01, jitter=0.0),
    )
    with trio.fail_after(1000):
        await nursery.start(supervisor.run)
        await enough.wait()
    assert supervisor.restart_counts == {"periodic": 8}


async def test_cancelling_the_root_cancels_every_child_in_the_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[str] = []

    class Ticker(Actor):
        async def background(self, nursery: trio.Nursery) -> None:
            nursery.start_soon(cancel_recorder("actor-background", cancelled))

        async def handle(self, message: Any) -> object:
            return "pong"

    mailbox = Mailbox(name="ticker")
    inner = Supervisor(
        "inner",
        [
            ChildSpec("inner-a", cancel_recorder("inner-a", cancelled)),
            ChildSpec("inner-b", cancel_recorder("inner-b", cancelled)),
            actor_child("ticker", mailbox, lambda mb: Ticker(mailbox=mb)),
        ],
    )
    root = Supervisor(
        "root",
        [
            ChildSpec("root-a", cancel_recorder("root-a", cancelled)),
            ChildSpec("inner", inner.run),
            ChildSpec("root-b", cancel_recorder("root-b", cancelled)),
        ],
    )
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            assert await mailbox.ref.ask("ping") == "pong"
            nursery.cancel_scope.cancel()
    assert sorted(cancelled) == sorted(
        ["root-a", "root-b", "inner-a", "inner-b", "actor-background"]
    )
    assert root.restart_counts == {"root-a": 0, "inner": 0, "root-b": 0}
    # Shutdown stopped the actor's mailbox: a late ask fails fast instead of hanging.
    with trio.fail_after(100), pytest.raises(ActorStopped):
        await mailbox.ref.ask("ping", timeout=None)


async def test_nested_escalation_restarts_the_subtree_only(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    flaky_runs = 0
    peer_starts = 0
    bystander_starts = 0
    recovered = trio.Event()
    bystander_cancelled: list[str] = []

    async def flaky(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal flaky_runs
        flaky_runs += 1
        task_status.started()
        if flaky_runs <= 2:
            raise Boom(f"flaky {flaky_runs}")
        recovered.set()
        await trio.sleep_forever()

    async def peer(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal peer_starts
        peer_starts += 1
        task_status.started()
        await trio.sleep_forever()

    async def bystander(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal bystander_starts
        bystander_starts += 1
        await cancel_recorder("bystander", bystander_cancelled)(task_status=task_status)

    inner = Supervisor(
        "inner",
        [ChildSpec("peer", peer), ChildSpec("flaky", flaky)],
        max_restarts=1,
        backoff_factory=seeded_backoff(initial=0.1),
    )
    escalations: list[BaseException | None] = []
    outer = Supervisor(
        "outer",
        [ChildSpec("bystander", bystander), ChildSpec("inner", inner.run)],
        backoff_factory=seeded_backoff(initial=0.1),
        on_restart=lambda name, exc: escalations.append(exc),
    )
    with trio.fail_after(1000):
        await nursery.start(outer.run)
        await recovered.wait()
    assert flaky_runs == 3
    assert peer_starts == 2  # cancelled with the escalating subtree, started again with it
    assert bystander_starts == 1 and bystander_cancelled == []
    assert outer.restart_counts == {"bystander": 0, "inner": 1}
    assert len(escalations) == 1 and isinstance(escalations[0], SupervisorEscalation)
    assert isinstance(escalations[0].__cause__, Boom)


async def test_transient_children_finish_and_permanent_ones_come_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    counts = {"transient": 0, "permanent": 0, "transient-crash": 0}

    def returning(name: str) -> Callable[..., Any]:
        async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            counts[name] += 1
            task_status.started()
            await trio.sleep(1.0)  # models work, then returns normally...
            if name == "transient-crash" and counts[name] == 1:
                raise Boom("...unless it crashes: transient children are restarted then")

        return run

    supervisor = Supervisor(
        "root",
        [
            ChildSpec("transient", returning("transient"), restart="transient"),
            ChildSpec("transient-crash", returning("transient-crash"), restart="transient"),
        ],
        backoff_factory=seeded_backoff(initial=0.1),
    )
    with trio.fail_after(1000):
        await supervisor.run()  # every child was transient and finished: run returns
    assert counts["transient"] == 1
    assert counts["transient-crash"] == 2
    assert supervisor.restart_counts == {"transient": 0, "transient-crash": 1}

    enough = trio.Event()

    async def permanent(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        counts["permanent"] += 1
        task_status.started()
        if counts["permanent"] == 3:
            enough.set()
            await trio.sleep_forever()
        await trio.sleep(1.0)  # then return normally

    perm = Supervisor("perm", [ChildSpec("permanent", permanent)], backoff_factory=seeded_backoff())
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(perm.run)
            await enough.wait()
            nursery.cancel_scope.cancel()
    assert counts["permanent"] == 3
    assert perm.restart_counts == {"permanent": 2}


async def test_a_permanent_child_that_keeps_returning_escalates_instead_of_spinning(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def quitter(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()

    supervisor = Supervisor(
        "root", [ChildSpec("quitter", quitter)], max_restarts=2, backoff_factory=seeded_backoff()
    )
    with trio.fail_after(1000), pytest.raises(SupervisorEscalation) as info:
        await supervisor.run()
    assert runs == 3
    assert info.value.__cause__ is None


async def test_backoff_resets_after_the_child_ran_healthily(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    starts: list[float] = []
    crashed_at: list[float] = []
    done = trio.Event()
    healthy_run = 100.0

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        n = len(starts)
        if n == 4:
            await trio.sleep(healthy_run)
        if n == 6:
            done.set()
            await trio.sleep_forever()
        crashed_at.append(trio.current_time())
        raise Boom(f"crash {n}")

    supervisor = Supervisor(
        "root",
        [ChildSpec("child", child)],
        max_restarts=10,
        window=30.0,
        backoff_factory=lambda: Backoff(initial=1.0, maximum=1000.0, jitter=0.0),
    )
    with trio.fail_after(10_000):
        await nursery.start(supervisor.run)
        await done.wait()
    delays = [start - crash for crash, start in zip(crashed_at, starts[1:])]
    # 1, 2, 4 while crashing fast; the 4th incarnation ran 100 s > window, so the backoff
    # starts over at 1 instead of continuing with 8; then grows again.
    assert delays == pytest.approx([1.0, 2.0, 4.0, 1.0, 2.0])


async def test_children_start_in_order_and_a_child_failing_to_start_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []
    attempts = 0

    async def slow_starter(
        *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        nonlocal attempts
        attempts += 1
        events.append(f"first attempt {attempts}")
        if attempts < 3:
            raise Boom("not ready yet")
        task_status.started()
        await trio.sleep_forever()

    async def second(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        events.append("second started")
        task_status.started()
        await trio.sleep_forever()

    supervisor = Supervisor(
        "root",
        [ChildSpec("first", slow_starter), ChildSpec("second", second)],
        backoff_factory=seeded_backoff(initial=0.1),
    )
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            events.append("root started")
            nursery.cancel_scope.cancel()
    assert events == [
        "first attempt 1",
        "first attempt 2",
        "first attempt 3",
        "second started",
        "root started",
    ]


async def test_escalation_stops_actor_mailboxes_so_waiting_asks_do_not_hang(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class NeverStarts(Actor):
        async def on_start(self) -> None:
            raise Boom("cannot connect")

        async def handle(self, message: Any) -> object:
            return message

    mailbox = Mailbox(name="never")
    supervisor = Supervisor(
        "root",
        [actor_child("never", mailbox, lambda mb: NeverStarts(mailbox=mb))],
        max_restarts=2,
        backoff_factory=seeded_backoff(initial=0.1),
    )
    outcome: list[BaseException] = []

    async def patient_ask() -> None:
        try:
            await mailbox.ref.ask("hello", timeout=None)
        except ActorStopped as exc:
            outcome.append(exc)

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(patient_ask)
            with pytest.raises(SupervisorEscalation):
                await supervisor.run()
    assert len(outcome) == 1


async def test_a_failing_on_restart_hook_does_not_break_supervision(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    runs = 0
    stable = trio.Event()

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        if runs == 1:
            raise Boom("once")
        stable.set()
        await trio.sleep_forever()

    def bad_hook(name: str, exc: BaseException | None) -> None:
        raise RuntimeError("metrics backend down")

    supervisor = Supervisor(
        "root", [ChildSpec("child", child)], backoff_factory=seeded_backoff(), on_restart=bad_hook
    )
    with trio.fail_after(1000):
        await nursery.start(supervisor.run)
        await stable.wait()
    assert runs == 2


def test_rejects_duplicate_child_names_and_unknown_policies() -> None:
    async def noop(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    with pytest.raises(ValueError, match="duplicate"):
        Supervisor("root", [ChildSpec("a", noop), ChildSpec("a", noop)])
    with pytest.raises(ValueError):
        ChildSpec("a", noop, restart="sometimes")  # type: ignore[arg-type]


async def test_restart_now_cuts_the_wait_short_and_resets_the_backoff(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    starts: list[float] = []
    crashed_at: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        crashed_at.append(trio.current_time())
        raise Boom(f"crash {len(starts)}")

    supervisor = Supervisor(
        "root", [ChildSpec("child", child)], max_restarts=100, window=1000.0,
        backoff_factory=lambda: Backoff(initial=1.0, maximum=1000.0, jitter=0.0))
    await nursery.start(supervisor.run)
    while len(starts) < 5:       # waits 1, 2, 4, 8: now waiting 16
        await trio.sleep(0.5)
    assert supervisor.restart_now("child") is True
    while len(starts) < 7:
        await trio.sleep(0.01)
    delays = [start - crash for crash, start in zip(crashed_at, starts[1:])]
    assert delays[:4] == pytest.approx([1.0, 2.0, 4.0, 8.0])
    assert delays[4] < 1.0                  # cut short, not 16
    assert delays[5] == pytest.approx(1.0)  # and the backoff starts over
    assert supervisor.restart_now("unknown") is False

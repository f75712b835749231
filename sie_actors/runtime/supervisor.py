"""Supervisors: restart failed children with backoff, escalate when failures cluster.

The tree of supervisors is the process's structure: every task lives in a nursery that a
supervisor owns, so cancelling the root shuts everything down and no task outlives its parent.

Policy, chosen to match Erlang/OTP's one-for-one strategy:

* A child that raises an ``Exception`` is restarted after a per-child backoff delay.
  ``trio.Cancelled`` and other ``BaseException`` s are never treated as crashes: they mean
  "shut down" (or KeyboardInterrupt) and propagate.
* ``permanent`` children are restarted even after a normal return, because a permanent child
  returning is itself unexpected (a service loop should never end). Those returns count
  against the restart intensity like crashes, so a child that returns immediately cannot spin.
  ``transient`` children that return normally are done and are not restarted.
* More than ``max_restarts`` failures of one child within ``window`` seconds means restarting
  is not helping: the supervisor cancels its other children and raises
  :class:`SupervisorEscalation` to its parent, which restarts the whole subtree (or, at the
  root, lets the process die).
* The backoff of a child is reset once an incarnation has run for ``healthy_after`` seconds
  (default: ``window``), so a failure days later starts again from a short delay.
* :meth:`Supervisor.restart_now` is news from outside that a failed child's resource is back
  (a worker announcing itself): it resets that child's backoff and cuts a pending wait short.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import trio

from .backoff import Backoff
from .errors import SupervisorEscalation

__all__ = ["ChildSpec", "RestartPolicy", "Supervisor", "SupervisorEscalation"]

logger = logging.getLogger("sie_actors.runtime")

RestartPolicy = Literal["permanent", "transient"]


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child.

    ``run`` is called as ``await run(task_status=...)`` and must call ``task_status.started()``
    once ready (``Actor.run`` and ``Supervisor.run`` both do), so siblings start in order.

    ``on_terminate`` is called (synchronously) when this supervisor will not run the child again:
    the supervisor is exiting for any reason, or a transient child finished. Actor children use
    it to stop their shared mailbox so pending asks fail with ``ActorStopped`` instead of hanging.
    """

    name: str
    run: Callable[..., Awaitable[None]]
    restart: RestartPolicy = "permanent"
    on_terminate: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.restart not in ("permanent", "transient"):
            raise ValueError(f"restart must be 'permanent' or 'transient', got {self.restart!r}")


class _FirstStarted:
    """Forwards only the first ``started()`` to the supervisor's own ``nursery.start``.

    The keeper task re-runs the child in place, so later incarnations call ``started()`` again;
    the supervisor only cares about the first one (children are started in order once), and
    trio's real task status raises if called twice.
    """

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self._inner = inner
        self.fired = False

    def started(self, value: Any = None) -> None:
        if not self.fired:
            self.fired = True
            self._inner.started()


class Supervisor:
    """Runs children one-for-one; see the module docstring for the policy."""

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        max_restarts: int = 5,
        window: float = 30.0,
        backoff_factory: Callable[[], Backoff] = Backoff,
        clock: Callable[[], float] = trio.current_time,
        healthy_after: float | None = None,
        on_restart: Callable[[str, BaseException | None], None] | None = None,
    ) -> None:
        names = [spec.name for spec in children]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child names {duplicates}")
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if window <= 0:
            raise ValueError("window must be > 0")
        self.name = name
        self.children: tuple[ChildSpec, ...] = tuple(children)
        self.max_restarts = max_restarts
        self.window = window
        self.healthy_after = window if healthy_after is None else healthy_after
        self._backoff_factory = backoff_factory
        self._clock = clock
        self._on_restart = on_restart
        #: Restarts per child since construction (not reset by re-runs), for metrics export.
        self.restart_counts: dict[str, int] = {spec.name: 0 for spec in self.children}
        self._backoffs: dict[str, Backoff] = {}
        self._waits: dict[str, trio.CancelScope] = {}

    def restart_now(self, child: str) -> bool:
        """Reset `child`'s backoff; if it is waiting to be restarted, restart it at once.

        Returns whether a wait was cut short (False: the child is running, or unknown).
        """
        backoff = self._backoffs.get(child)
        if backoff is not None:
            backoff.reset()
        wait = self._waits.get(child)
        if wait is None:
            return False
        wait.cancel()
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, then supervise them until cancelled or escalating.

        Reports started once every child has reported started. Returns normally only if every
        child was transient and finished.
        """
        terminated: set[str] = set()
        try:
            try:
                async with trio.open_nursery() as nursery:
                    for spec in self.children:
                        await nursery.start(self._keep, spec, terminated)
                    task_status.started()
            except BaseExceptionGroup as group:
                escalation = _sole_escalation(group)
                if escalation is None:
                    raise
                # Re-raise the escalation itself so the parent sees a plain exception with the
                # child's error chained, not an ExceptionGroup produced by our nursery.
                raise escalation from escalation.__cause__
        finally:
            for spec in self.children:
                self._terminate(spec, terminated)

    async def _keep(
        self,
        spec: ChildSpec,
        terminated: set[str],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run one child again and again in this task until it is done or escalates."""
        status = _FirstStarted(task_status)
        backoff = self._backoffs[spec.name] = self._backoff_factory()
        failures: deque[float] = deque()
        while True:
            began = self._clock()
            error: Exception | None = None
            try:
                await spec.run(task_status=status)
            except Exception as exc:
                error = exc
            else:
                if spec.restart == "transient":
                    logger.info("supervisor %s: child %s finished", self.name, spec.name)
                    status.started()  # never leave our nursery.start waiting
                    self._terminate(spec, terminated)
                    return
            now = self._clock()
            if now - began >= self.healthy_after:
                backoff.reset()
            failures.append(now)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) > self.max_restarts:
                logger.error(
                    "supervisor %s: child %s failed %d times within %gs; escalating",
                    self.name, spec.name, len(failures), self.window, exc_info=error,
                )
                raise SupervisorEscalation(
                    self.name, spec.name, len(failures), self.window
                ) from error
            delay = backoff.next_delay()
            self.restart_counts[spec.name] += 1
            if error is None:
                logger.warning(
                    "supervisor %s: permanent child %s returned; restart #%d in %.3fs",
                    self.name, spec.name, self.restart_counts[spec.name], delay,
                )
            else:
                logger.warning(
                    "supervisor %s: child %s crashed: %r; restart #%d in %.3fs",
                    self.name, spec.name, error, self.restart_counts[spec.name], delay,
                    exc_info=error,
                )
            self._notify_restart(spec.name, error)
            with trio.CancelScope() as wait:
                self._waits[spec.name] = wait
                try:
                    await trio.sleep(delay)
                finally:
                    self._waits.pop(spec.name, None)

    def _notify_restart(self, child: str, error: BaseException | None) -> None:
        if self._on_restart is None:
            return
        try:
            self._on_restart(child, error)
        except Exception:
            # A metrics hook must not be able to break supervision itself.
            logger.exception("supervisor %s: on_restart callback failed", self.name)

    def _terminate(self, spec: ChildSpec, terminated: set[str]) -> None:
        if spec.name in terminated:
            return
        terminated.add(spec.name)
        if spec.on_terminate is None:
            return
        try:
            spec.on_terminate()
        except Exception:
            logger.exception("supervisor %s: on_terminate of %s failed", self.name, spec.name)

    def __repr__(self) -> str:
        return f"<Supervisor {self.name} children={[c.name for c in self.children]}>"


def _sole_escalation(group: BaseExceptionGroup[Any]) -> SupervisorEscalation | None:
    """Return the escalation if it is all the group holds (siblings' Cancelled are absorbed)."""
    matched, rest = group.split(SupervisorEscalation)
    if matched is None or rest is not None:
        return None
    leaves = list(_leaves(matched))
    return leaves[0] if isinstance(leaves[0], SupervisorEscalation) else None


def _leaves(exc: BaseException) -> Any:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc

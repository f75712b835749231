"""The nemesis: a seeded schedule of faults, injected one at a time into the running cluster.

Fault kinds, each held for a few seconds and then healed:

    nats_kill      SIGKILL nats-server, restart it on the same port
    nats_pause     SIGSTOP nats-server (a silent partition: no TCP reset), then SIGCONT
    config_kill    SIGKILL sie-config while a write is in flight, restart it (store + restore)
    gateway_kill   SIGKILL one gateway, restart it
    worker_kill    SIGKILL one worker, restart it
    store_fail     the store's `models/` directory replaced by a regular file (every model write
                   fails, even as root), then put back
    forged_deltas  garbage and forged deltas on NATS under the trusted producer id (far-future
                   and `epoch+1` models, another generation, malformed JSON and YAML; see
                   `sie_chaos.forger`), published for the length of the fault

The schedule is a pure function of the seed and the duration: rounds of every kind in a shuffled
order, at least `min_rounds` of them, with durations and quiet gaps drawn from the seed and
stretched or squeezed to fill the duration. Executing it is the only place that sleeps on
purpose: holding a fault for its duration is the thing under test. After each heal the nemesis
waits (bounded) for the cluster to converge, which the observer measures, before the next gap.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Awaitable, Callable, Sequence

import trio

from sie_chaos.history import History
from sie_chaos.observer import CaughtUp

FAULT_KINDS = ("nats_kill", "nats_pause", "config_kill", "gateway_kill", "worker_kill",
               "store_fail", "forged_deltas")
STORE_AWAY_SUFFIX = ".chaos-away"


@dataclass(frozen=True)
class Fault:
    index: int
    kind: str
    target: str       # process name, or "store"
    at: float         # nominal start, seconds after the workload started
    duration: float   # how long the fault is held
    gap: float        # nominal quiet time after it, before the next fault

    def describe(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ScheduleSettings:
    warmup: float = 3.0               # writes before the first fault
    tail: float = 5.0                 # writes after the last fault's nominal end
    min_rounds: int = 2               # every kind at least this often
    fault_s: tuple[float, float] = (2.0, 4.0)
    # A paused server is only noticed by missed pings (2 s interval, 2 outstanding): hold the
    # silent partition long enough for that detection to happen within the fault, usually.
    pause_s: tuple[float, float] = (4.0, 8.0)
    gap_s: tuple[float, float] = (2.0, 4.0)
    min_fault_s: float = 1.5
    min_gap_s: float = 1.0

    def minimum_duration(self, kinds: int = len(FAULT_KINDS)) -> float:
        return (self.warmup + self.tail
                + self.min_rounds * kinds * (self.min_fault_s + self.min_gap_s))


class ScheduleError(ValueError):
    pass


def plan_schedule(seed: int, duration: float, *, config: str, nats: str,
                  gateways: Sequence[str], workers: Sequence[str],
                  settings: ScheduleSettings = ScheduleSettings()) -> tuple[Fault, ...]:
    """The faults of a run: same seed and duration, same schedule."""
    if duration < settings.minimum_duration():
        raise ScheduleError(f"--duration {duration:g} is too short: {settings.min_rounds} rounds "
                            f"of {len(FAULT_KINDS)} faults need at least "
                            f"{settings.minimum_duration():.0f}s")
    if not gateways or not workers:
        raise ScheduleError("the cluster needs at least one gateway and one worker")
    rng = random.Random(f"sie-chaos-schedule:{seed}")
    budget = duration - settings.warmup - settings.tail
    round_s = ((len(FAULT_KINDS) - 1) * sum(settings.fault_s) / 2 + sum(settings.pause_s) / 2
               + len(FAULT_KINDS) * sum(settings.gap_s) / 2)
    rounds = max(settings.min_rounds, int(budget // round_s))
    kinds: list[str] = []
    for _ in range(rounds):
        order = list(FAULT_KINDS)
        rng.shuffle(order)
        if kinds and order[0] == kinds[-1]:  # never the same kind twice in a row
            order[0], order[-1] = order[-1], order[0]
        kinds.extend(order)
    durations = [rng.uniform(*(settings.pause_s if kind == "nats_pause" else settings.fault_s))
                 for kind in kinds]
    gaps = [rng.uniform(*settings.gap_s) for _ in kinds]
    durations, gaps = _fit(durations, gaps, budget, settings)
    targets = {"nats_kill": lambda: nats, "nats_pause": lambda: nats,
               "config_kill": lambda: config, "store_fail": lambda: "store",
               "forged_deltas": lambda: nats,
               "gateway_kill": lambda: rng.choice(list(gateways)),
               "worker_kill": lambda: rng.choice(list(workers))}
    faults, at = [], settings.warmup
    for index, (kind, held, gap) in enumerate(zip(kinds, durations, gaps)):
        faults.append(Fault(index, kind, targets[kind](), at, held, gap))
        at += held + gap
    return tuple(faults)


def _fit(durations: list[float], gaps: list[float], budget: float,
         settings: ScheduleSettings) -> tuple[list[float], list[float]]:
    """Squeeze (above the minimums) or stretch (gaps only) so the faults fill `budget`."""
    total = sum(durations) + sum(gaps)
    if total < budget:
        extra = budget - total
        share = sum(gaps)
        return durations, [g + extra * g / share for g in gaps]
    floor = len(durations) * (settings.min_fault_s + settings.min_gap_s)
    k = (budget - floor) / (total - floor)
    return ([settings.min_fault_s + (d - settings.min_fault_s) * k for d in durations],
            [settings.min_gap_s + (g - settings.min_gap_s) * k for g in gaps])


class HealFailed(RuntimeError):
    pass


class Nemesis:
    """Runs a schedule against a ClusterRunner (started with `restart=False`)."""

    def __init__(self, runner, history: History, schedule: Sequence[Fault], *,
                 store_dir: Path, busy: Callable[[], bool],
                 converged: Callable[[Fault], Awaitable[CaughtUp | None]],
                 report: Callable[[str], None] = print,
                 forge: Callable[[Fault], Awaitable[object]] | None = None,
                 settings: ScheduleSettings = ScheduleSettings()) -> None:
        self.runner = runner
        self.history = history
        self.schedule = tuple(schedule)
        self.store_dir = store_dir
        self.busy = busy
        self.converged = converged
        self.report = report
        self.forge = forge
        self.settings = settings

    async def run(self, started_at: float) -> None:
        """Every fault of the schedule in order; `started_at` is trio time of the nominal 0."""
        ready_at = started_at
        for fault in self.schedule:
            await trio.sleep_until(max(started_at + fault.at, ready_at))
            await self.one(fault)
            ready_at = trio.current_time() + self.settings.min_gap_s

    async def one(self, fault: Fault) -> None:
        if fault.kind == "config_kill":
            with trio.move_on_after(2.0):  # kill it mid-write, when the workload lets us
                while not self.busy():
                    await trio.sleep(0.005)
        self.history.record("fault", fault=fault.index, kind=fault.kind, target=fault.target,
                            duration=round(fault.duration, 3), nominal_at=round(fault.at, 3))
        self.report(f"  fault #{fault.index:<3} {fault.kind:<13} {fault.target:<24} "
                    f"for {fault.duration:.1f}s")
        try:
            if fault.kind == "forged_deltas":
                if self.forge is not None:
                    await self.forge(fault)  # publishing for its duration is the fault
            else:
                await self.inject(fault)
                await trio.sleep(fault.duration)
        finally:
            with trio.CancelScope(shield=True):
                await self.heal(fault)
        self.history.record("heal", fault=fault.index, kind=fault.kind, target=fault.target)
        caught = await self.converged(fault)
        if caught is None:
            self.history.record("converged", fault=fault.index, kind=fault.kind, seconds=None)
            self.report("           healed; NOT caught up in time")
            return
        self.history.record("converged", fault=fault.index, kind=fault.kind,
                            seconds=caught.seconds, whole_probe=caught.whole_probe,
                            nodes=caught.nodes, lag=caught.lag)
        last = max(caught.nodes, key=caught.nodes.get, default="")
        self.report(f"           healed; caught up in {caught.seconds:.2f}s "
                    f"(whole probe {caught.whole_probe:.2f}s; last {last}"
                    + (f", before: {caught.lag.get(last)}" if caught.lag.get(last) else "")
                    + ")")

    # ---- the faults --------------------------------------------------------------------------
    async def inject(self, fault: Fault) -> None:
        if fault.kind == "store_fail":
            break_store(self.store_dir)
            return
        child = self.runner.child(fault.target)
        if fault.kind == "nats_pause":
            child.pause()
        else:
            await child.kill()

    async def heal(self, fault: Fault) -> None:
        try:
            if fault.kind == "forged_deltas":
                return  # nothing to undo: the mirrors must heal themselves
            if fault.kind == "store_fail":
                restore_store(self.store_dir)
            elif fault.kind == "nats_pause":
                self.runner.child(fault.target).resume()
            else:
                await self.runner.restart_child(fault.target)
        except (RuntimeError, OSError) as exc:  # ChildExited, TimeoutError, a failed start
            self.history.record("heal_failed", fault=fault.index, kind=fault.kind,
                                target=fault.target, error=str(exc)[-2000:])
            raise HealFailed(f"{fault.kind} on {fault.target}: {exc}") from exc


def break_store(store_dir: Path) -> None:
    """Put a regular file where the store's `models/` directory is: every model write fails,
    even as root (chmod would not stop root). The swap is one atomic exchange where the kernel
    offers it, so sie-config never sees `models/` missing (and never recreates it)."""
    models, away = store_dir / "models", store_dir / ("models" + STORE_AWAY_SUFFIX)
    models.mkdir(parents=True, exist_ok=True)
    away.write_text("sie-chaos: the store is failing on purpose\n")
    if not exchange(models, away):
        away.unlink()
        models.rename(away)
        models.write_text("sie-chaos: the store is failing on purpose\n")


def restore_store(store_dir: Path) -> None:
    """Undo `break_store` (idempotent, so a teardown can always call it)."""
    models, away = store_dir / "models", store_dir / ("models" + STORE_AWAY_SUFFIX)
    if away.is_dir() and models.exists() and not models.is_dir():
        if not exchange(models, away):
            models.unlink()
            away.rename(models)
    elif away.is_dir() and not models.exists():
        away.rename(models)
    if away.exists() and not away.is_dir():
        away.unlink()


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); False if unsupported."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(a))


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _libc():
    return ctypes.CDLL(None, use_errno=True)

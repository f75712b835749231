"""One chaos run, end to end: cluster up, baseline, observer + workload + nemesis, drain, final
observations, cluster down (always, in `finally`).

Timeline of a run of `duration` seconds (t = 0 when the workload starts):

    [0, duration)        the workload writes; the nemesis runs its schedule (warm-up, faults,
                         heals, convergence waits, gaps), whose nominal end leaves a fault-free
                         tail before `duration`
    duration             the workload stops starting operations; those in flight finish their
                         retries (bounded by the operation deadline)
    then                 the final convergence wait (bounded), the final observations, teardown

Everything is bounded: a hard time limit covers the whole run, the cluster's readiness waits
have deadlines, and every HTTP request has a timeout.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import trio

from sie_actors.procs import free_port_block
from sie_actors.seed import load_bundles
from sie_cluster.runner import ClusterRunner
from sie_cluster.topology import ClusterPlan, plan_cluster

from sie_chaos.exports import ExportMeter
from sie_chaos.exports import record as record_exports
from sie_chaos.forger import forge_for
from sie_chaos.history import History
from sie_chaos.nemesis import HealFailed, Nemesis, ScheduleSettings, plan_schedule, restore_store
from sie_chaos.encoders import EncodeSettings, Encoders
from sie_chaos.observer import (Observer, Targets, convergence_problems, models_of, not_acked)
from sie_chaos.workload import Workload, WorkloadSettings, bundle_adapters

PORT_BLOCK = 40  # sie-config at base, gateways base+1.., workers base+10.., NATS at base+30


@dataclass(frozen=True)
class ChaosOptions:
    duration: float
    seed: int = 1
    gateways: int = 3
    data_dir: Path | None = None
    converge_cap: float = 30.0       # per fault: heal -> caught up, before the next gap
    converge_timeout: float = 60.0   # at the end: workload stopped -> everything equal and acked
    ready_timeout: float = 60.0
    workload: WorkloadSettings = field(default_factory=WorkloadSettings)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)

    def hard_limit(self, faults: int) -> float:
        return (self.duration + faults * (self.converge_cap + self.ready_timeout / 4)
                + self.workload.op_deadline + self.converge_timeout + 2 * self.ready_timeout
                + 60.0)


def make_plan(options: ChaosOptions, data_dir: Path) -> ClusterPlan:
    base = free_port_block(PORT_BLOCK)
    return plan_cluster(data_dir=data_dir, base_port=base, nats_port=base + 30,
                        gateways=options.gateways, workers_per_bundle=1)


def targets_of(plan: ClusterPlan) -> Targets:
    return Targets(plan.config.url, {g.name: g.url for g in plan.gateways},
                   {w.name: (w.url, w.env["SIE_BUNDLE"]) for w in plan.workers})


async def run_chaos(options: ChaosOptions, history: History,
                    say: Callable[[str], None] = print) -> None:
    data_dir = (options.data_dir or Path(tempfile.mkdtemp(prefix="sie-chaos-"))).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    plan = make_plan(options, data_dir)
    schedule = plan_schedule(options.seed, options.duration, config=plan.config.name,
                             nats=plan.nats.name, gateways=[g.name for g in plan.gateways],
                             workers=[w.name for w in plan.workers], settings=options.schedule)
    targets = targets_of(plan)
    history.record("run", seed=options.seed, duration=options.duration, data_dir=str(data_dir),
                   processes={spec.name: spec.url for spec in plan.processes},
                   nats=plan.nats_url, schedule=[f.describe() for f in schedule])
    say(f"sie-chaos: seed {options.seed}, {options.duration:g}s, {len(schedule)} faults; "
        f"cluster data and logs in {data_dir}")
    store_dir = plan.store_dir
    limit = options.hard_limit(len(schedule))
    with trio.move_on_after(limit) as overall:
        stop_cluster = trio.Event()
        async with trio.open_nursery() as outer:
            runner = ClusterRunner(plan, restart=False, ready_timeout=options.ready_timeout,
                                   report=say)
            try:
                await outer.start(runner.run, stop_cluster)
                say(f"cluster ready: {', '.join(s.name for s in plan.processes)}")
                await _session(options, history, say, runner, schedule, targets, store_dir)
            finally:
                restore_store(store_dir)
                stop_cluster.set()
    if overall.cancelled_caught:
        history.record("error", error=f"the run exceeded its hard time limit of {limit:.0f}s")
    say("cluster stopped")


async def _session(options: ChaosOptions, history: History, say, runner: ClusterRunner,
                   schedule, targets: Targets, store_dir: Path) -> None:
    encoders = None
    if options.encode.clients:
        # added before the baseline is read: the checker counts it as baseline, not unexpected
        encoders = Encoders(list(targets.gateways.values()), history, options.encode,
                            options.seed)
        await encoders.prepare(targets.config)
    async with httpx.AsyncClient(timeout=10.0) as http:
        baseline = await models_of(http, targets.config)
    if baseline is None:
        raise RuntimeError("could not read sie-config's model list at the start")
    history.record("baseline", models=baseline)
    bundles_dir = Path(runner.plan.config.env["SIE_BUNDLES_DIR"])
    observer = Observer(targets, history)
    workload = Workload(targets.config, history, options.workload,
                        bundle_adapters(load_bundles(bundles_dir)), seed=options.seed)
    bundles = sorted({bundle for _url, bundle in targets.workers.values()})

    def forge(fault):
        return forge_for(fault.duration, nats_url=runner.plan.nats_url, config_url=targets.config,
                         bundles=bundles, history=history, fault=fault.index,
                         rng=random.Random(f"sie-chaos-forge:{options.seed}:{fault.index}"))

    nemesis = Nemesis(runner, history, schedule, store_dir=store_dir,
                      busy=lambda: workload.inflight > 0,
                      converged=lambda fault: observer.wait_caught_up(options.converge_cap),
                      report=say, forge=forge, settings=options.schedule)
    meter = ExportMeter(targets.config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(observer.run)
        nursery.start_soon(meter.run)
        await observer.next_probe()
        workload_scope = trio.CancelScope()
        workload_done = trio.Event()

        async def work() -> None:
            with workload_scope:
                try:
                    await workload.run()
                finally:
                    workload_done.set()

        started = trio.current_time()
        nursery.start_soon(work)
        if encoders is not None:
            nursery.start_soon(encoders.run)
        healed = True
        try:
            await nemesis.run(started)
        except HealFailed as exc:
            healed = False
            say(f"!! heal failed: {exc}")
        if healed:
            await trio.sleep_until(started + options.duration)
        workload.stop.set()
        if encoders is not None:
            encoders.stop.set()
            say("encodes: " + ", ".join(f"{k} {v}" for k, v in sorted(encoders.outcomes.items())))
        say(f"workload stopping after {workload.issued} operations; draining")
        with trio.move_on_after(options.workload.op_deadline + options.workload.request_timeout
                                + 5.0):
            await workload_done.wait()
        workload_scope.cancel()
        await workload_done.wait()
        say("outcomes: " + ", ".join(f"{k} {v}" for k, v in workload.outcomes.items()))
        final = await final_observations(observer, targets, options.converge_timeout, history)
        history.record("final", **final)
        exports = record_exports(history, meter)
        say(f"sie-config exports (bootstraps and resyncs): {exports['total']} in "
            f"{exports.get('minutes', 0)} min, {exports['per_minute']}/min, "
            f"worst minute {exports['peak_per_minute']}")
        say("final: " + ("converged in %.2fs" % final["converged_after"]
                         if final["converged_after"] is not None
                         else f"NOT converged: {final['problems'][:5]}"))
        if final["config"]["models"] is not None:
            say("restarting sie-config once more (SIGKILL) to check what it restores")
            history.record("restarted", **await restart_config(runner, targets))
        nursery.cancel_scope.cancel()


async def restart_config(runner: ClusterRunner, targets: Targets) -> dict:
    """SIGKILL sie-config and start it again on its store: what does it serve now?"""
    await runner.child(runner.plan.config.name).kill()
    try:
        await runner.restart_child(runner.plan.config.name)
    except (RuntimeError, OSError) as exc:  # ChildExited, TimeoutError, a failed start
        return {"models": None, "sync": None, "error": str(exc)[-2000:]}
    async with httpx.AsyncClient(timeout=30.0) as http:
        models = await models_of(http, targets.config)
        try:
            response = await http.get(targets.config + "/v1/configs/epoch")
            sync = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            sync = None
    return {"models": models, "sync": sync}


async def final_observations(observer: Observer, targets: Targets, timeout: float,
                             history: History | None = None) -> dict:
    """Wait (bounded) until every replica equals sie-config and every model is all-acked on
    every gateway; then read every model list. `converged_after` counts from the call (the
    workload has stopped), None when the deadline passed first."""
    started = trio.current_time()
    expected = targets.expected_workers
    problems: list[str] = ["no probe"]
    pending: dict[str, list[str] | None] = {name: None for name in targets.gateways}
    converged_after = None
    probe = None
    async with observer.client() as http:
        with trio.move_on_after(timeout):
            while True:
                probe = await observer.next_probe()
                seen = problems
                problems = convergence_problems(probe, expected)
                if history is not None and problems and problems != seen:
                    history.record("waiting", problems=problems)
                if problems:
                    continue
                equal_at = probe.finished  # the acks below take a while to read on many models
                config_models = await models_of(http, targets.config)
                if config_models is None:
                    problems = ["sie-config's model list could not be read"]
                    continue
                for name, url in targets.gateways.items():
                    ids = list(config_models) if pending[name] is None else pending[name]
                    pending[name] = await not_acked(http, url, ids)
                if history is not None and any(pending.values()):
                    history.record("waiting", not_acked={n: p[:5] for n, p in pending.items()
                                                         if p})
                if not any(pending.values()):
                    converged_after = round(max(0.0, equal_at - started), 3)
                    break
        config_models = await models_of(http, targets.config)
        gateways = {}
        for name, url in targets.gateways.items():
            gateways[name] = {"sync": probe.gateways.get(name) if probe else None,
                              "models": await models_of(http, url),
                              "not_acked": pending[name] or []}
    return {"converged_after": converged_after, "problems": problems,
            "config": {"sync": probe.config if probe else None, "models": config_models},
            "gateways": gateways, "workers": probe.workers if probe else {}}

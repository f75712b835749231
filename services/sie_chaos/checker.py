"""The checker: a pure function from a run's history to its violations and its numbers.

It reads only history events (see `sie_chaos.history`), so a saved history can be judged again.
The unit of a write is a (model, profile) pair; the workload gives every operation its own pair.

Violations (any one fails the run):
    lost              an acknowledged write missing from sie-config or from any gateway
    unexpected        a pair present somewhere that no client attempted (and not in the baseline)
    failed_present    a write whose every attempt was refused with "nothing applied", present
    divergent         a pair (indeterminate or otherwise unacknowledged) present on some nodes
                      and absent on others: indeterminate writes must agree everywhere
    baseline_missing  a model of the starting catalog missing somewhere at the end
    epoch_regression  a node reported an epoch lower than one it reported before, in the same
                      generation
    not_converged     at the end, a gateway or worker not at sie-config's state, or a model not
                      all-acked on some gateway, within the convergence deadline
    heal_failed       a killed process did not come back
    bad_ack           a 200/201 whose body does not acknowledge the operation's own write
    not_durable       after the final observations, sie-config SIGKILLed and restarted (store
                      and restore) does not serve exactly the same models, or another generation
    incomplete        the run did not reach its final observations (harness error, time limit)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

OK, FAILED, INDETERMINATE = "ok", "failed", "indeterminate"
CONFIG_NODE = "sie-config"

Pair = tuple[str, str]


@dataclass
class Verdict:
    counts: dict[str, int]
    violations: list[dict]
    convergence: dict[str, dict]  # fault kind -> faults, p50, max, whole_probe_max, unconverged
    final_convergence: float | None = None  # seconds from the last heal to full convergence
    seed: int | None = None
    duration: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self, max_violations: int = 200) -> dict:
        return {"ok": self.ok, "seed": self.seed, "duration": self.duration,
                "counts": self.counts, "convergence": self.convergence,
                "final_convergence_s": self.final_convergence,
                "violation_count": len(self.violations),
                "violations": self.violations[:max_violations], **self.extra}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(q * 100) * len(ordered) // 100))  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


def pairs_of(models: Mapping[str, Iterable[str]] | None) -> set[Pair]:
    return {(model, profile) for model, profiles in (models or {}).items()
            for profile in profiles}


def check(events: Iterable[dict]) -> Verdict:
    events = list(events)
    invokes: dict[int, dict] = {}
    outcomes: dict[int, str] = {}
    baseline: Mapping[str, list[str]] = {}
    final: dict | None = None
    restarted: dict | None = None
    run: dict = {}
    violations: list[dict] = []
    convergence: dict[str, list[float | None]] = defaultdict(list)
    whole_probe: dict[str, list[float | None]] = defaultdict(list)
    faults: dict[str, int] = defaultdict(int)
    exports: dict | None = None
    encodes: Counter[str] = Counter()
    for event in events:
        kind = event.get("type")
        if kind == "encode":
            outcome = str(event.get("outcome"))
            encodes[outcome] += 1
            if outcome in ("wrong_vector", "hang") or outcome.endswith("internal_error"):
                violations.append({"kind": f"encode_{outcome.split()[-1]}",
                                   "gateway": event.get("gateway"), "t": event.get("t")})
        elif kind == "exports":
            exports = {k: v for k, v in event.items() if k not in ("type", "t")}
        elif kind == "invoke":
            invokes[event["op"]] = event
        elif kind == "complete":
            outcomes[event["op"]] = event["outcome"]
            if event.get("bad_ack"):
                violations.append({"kind": "bad_ack", "op": event["op"],
                                   "problem": event["bad_ack"]})
        elif kind == "restarted":
            restarted = event
        elif kind == "baseline":
            baseline = event.get("models") or {}
        elif kind == "final":
            final = event
        elif kind == "run":
            run = event
        elif kind == "fault":
            faults[event["kind"]] += 1
        elif kind == "converged":
            convergence[event["kind"]].append(event.get("seconds"))
            whole_probe[event["kind"]].append(event.get("whole_probe", event.get("seconds")))
        elif kind == "heal_failed":
            violations.append({"kind": "heal_failed", "fault": event.get("fault"),
                               "fault_kind": event.get("kind"), "target": event.get("target"),
                               "error": event.get("error", "")})
        elif kind == "error":
            violations.append({"kind": "incomplete", "error": event.get("error", "")})

    # An operation the run never saw complete may have been applied: indeterminate.
    for op in invokes:
        outcomes.setdefault(op, INDETERMINATE)
    by_pair: dict[Pair, list[int]] = defaultdict(list)
    for op, invoke in invokes.items():
        by_pair[(invoke["model"], invoke["profile"])].append(op)

    counts = {"attempted": len(invokes),
              "acknowledged": sum(1 for o in outcomes.values() if o == OK),
              "failed": sum(1 for o in outcomes.values() if o == FAILED),
              "indeterminate": sum(1 for o in outcomes.values() if o == INDETERMINATE),
              "lost": 0, "recovered": 0, "unexpected": 0, "failed_present": 0, "divergent": 0,
              "baseline_missing": 0, "epoch_regressions": 0, "faults": sum(faults.values())}

    regressions = epoch_regressions(events)
    counts["epoch_regressions"] = len(regressions)
    violations.extend(regressions)

    if final is None:
        violations.append({"kind": "incomplete",
                           "error": "no final observations: the run did not finish"})
    else:
        violations.extend(_judge_final(final, invokes, outcomes, by_pair, pairs_of(baseline),
                                       counts))
        if restarted is not None:
            after_restart = _judge_restart(final, restarted)
            counts["epoch_regressions"] += sum(v["kind"] == "epoch_regression"
                                               for v in after_restart)
            counts["not_durable"] = sum(v["kind"] == "not_durable" for v in after_restart)
            violations.extend(after_restart)

    per_kind = {}
    for kind in sorted(set(faults) | set(convergence)):
        seconds = convergence.get(kind, [])
        done = [s for s in seconds if s is not None]
        bounds = [s for s in whole_probe.get(kind, []) if s is not None]
        per_kind[kind] = {"faults": faults.get(kind, 0), "p50": percentile(done, 0.5),
                          "max": max(done) if done else None,
                          "whole_probe_max": max(bounds) if bounds else None,
                          "unconverged": len(seconds) - len(done)}
    return Verdict(counts, violations, per_kind,
                   final_convergence=(final or {}).get("converged_after"),
                   seed=run.get("seed"), duration=run.get("duration"),
                   extra={**({"exports": exports} if exports is not None else {}),
                          **({"encodes": dict(encodes)} if encodes else {})})


def _judge_final(final: dict, invokes: dict[int, dict], outcomes: dict[int, str],
                 by_pair: dict[Pair, list[int]], baseline: set[Pair],
                 counts: dict[str, int]) -> list[dict]:
    violations: list[dict] = []
    nodes: dict[str, set[Pair]] = {}
    config_models = (final.get("config") or {}).get("models")
    gateway_finals = final.get("gateways") or {}
    for node, models in [(CONFIG_NODE, config_models),
                         *((name, g.get("models")) for name, g in sorted(gateway_finals.items()))]:
        if models is None:
            violations.append({"kind": "not_converged", "node": node,
                               "problem": "its model list could not be read at the end"})
            continue
        nodes[node] = pairs_of(models)

    # lost: acknowledged, missing somewhere
    for op, invoke in sorted(invokes.items()):
        if outcomes[op] != OK:
            continue
        pair = (invoke["model"], invoke["profile"])
        missing = [node for node, present in nodes.items() if pair not in present]
        if missing:
            counts["lost"] += 1
            violations.append({"kind": "lost", "op": op, "model": pair[0], "profile": pair[1],
                               "key": invoke.get("key"), "invoked_at": invoke.get("t"),
                               "missing_on": missing})

    # unexpected: present, never attempted, not in the baseline
    unexpected: dict[Pair, list[str]] = defaultdict(list)
    for node, present in nodes.items():
        for pair in sorted(present - baseline):
            if pair not in by_pair:
                unexpected[pair].append(node)
    for pair, where in sorted(unexpected.items()):
        counts["unexpected"] += 1
        violations.append({"kind": "unexpected", "model": pair[0], "profile": pair[1],
                           "present_on": where})

    # baseline_missing
    for pair in sorted(baseline):
        missing = [node for node, present in nodes.items() if pair not in present]
        if missing:
            counts["baseline_missing"] += 1
            violations.append({"kind": "baseline_missing", "model": pair[0], "profile": pair[1],
                               "missing_on": missing})

    # unacknowledged writes: failed must be absent; indeterminate may go either way, identically
    for pair, ops in sorted(by_pair.items()):
        settled = {outcomes[op] for op in ops}
        if OK in settled:
            continue
        where = [node for node, present in nodes.items() if pair in present]
        absent = [node for node in nodes if node not in where]
        if settled == {FAILED} and where:
            counts["failed_present"] += 1
            violations.append({"kind": "failed_present", "ops": ops, "model": pair[0],
                               "profile": pair[1], "present_on": where})
        elif where and absent:
            counts["divergent"] += 1
            violations.append({"kind": "divergent", "ops": ops, "model": pair[0],
                               "profile": pair[1], "outcome": sorted(settled),
                               "present_on": where, "absent_on": absent})
        if INDETERMINATE in settled and CONFIG_NODE in where:
            counts["recovered"] += 1

    # convergence at the end
    for problem in final.get("problems") or []:
        violations.append({"kind": "not_converged", "problem": problem})
    for name, gateway in sorted(gateway_finals.items()):
        pending = gateway.get("not_acked") or []
        if pending:
            violations.append({"kind": "not_converged", "node": name,
                               "problem": f"{len(pending)} model(s) not all-acked",
                               "models": pending[:20]})
    if final.get("converged_after") is None and not final.get("problems") and not any(
            g.get("not_acked") for g in gateway_finals.values()):
        violations.append({"kind": "not_converged",
                           "problem": "no full convergence within the deadline"})
    return violations


def _judge_restart(final: dict, restarted: dict) -> list[dict]:
    """sie-config SIGKILLed and restarted after the final observations must come back with
    exactly the models it served (durability of everything, acknowledged or not), the same
    generation, and an epoch no lower than the one it had published."""
    before_sync = (final.get("config") or {}).get("sync") or {}
    after_sync = restarted.get("sync") or {}
    before = pairs_of((final.get("config") or {}).get("models"))
    after_models = restarted.get("models")
    if after_models is None or not after_sync:
        return [{"kind": "not_durable", "problem": "sie-config did not answer after a restart"}]
    after = pairs_of(after_models)
    violations = [{"kind": "not_durable", "model": m, "profile": p, "problem": problem}
                  for problem, pairs in (("gone after a restart", before - after),
                                         ("appeared after a restart", after - before))
                  for m, p in sorted(pairs)]
    if after_sync.get("generation") != before_sync.get("generation"):
        violations.append({"kind": "not_durable", "problem": "generation changed on restart: "
                           f"{before_sync.get('generation')} -> {after_sync.get('generation')}"})
    if (after_sync.get("epoch") or 0) < (before_sync.get("epoch") or 0):
        violations.append({"kind": "epoch_regression", "node": CONFIG_NODE,
                           "problem": "epoch went back on restart", "epoch": after_sync.get("epoch"),
                           "previous": before_sync.get("epoch")})
    return violations


def epoch_regressions(events: Iterable[dict]) -> list[dict]:
    """Every observation of a node whose epoch is below the highest it reported earlier in the
    same generation (a node that has no generation yet is not judged).

    An epoch the nemesis forged (`epoch + 1` under the trusted id, see `sie_chaos.forger`) is
    never taken as a high mark: a replica that applied the forgery and healed back to sie-config
    did right. (That epoch is soon written for real, so this blinds the check to very little.)
    """
    events = list(events)
    forged = {(g, e) for event in events if event.get("type") == "forged"
              for g, e in event.get("epochs") or ()}
    highest: dict[tuple[str, str], tuple[int, float]] = {}
    found = []
    for event in events:
        if event.get("type") != "observe":
            continue
        generation = event.get("generation") or ""
        epoch = event.get("epoch")
        if not generation or not isinstance(epoch, int) or event.get("bootstrapped") is False:
            continue
        key = (event["node"], generation)
        best = highest.get(key)
        if best is not None and epoch < best[0]:
            found.append({"kind": "epoch_regression", "node": event["node"],
                          "generation": generation, "epoch": epoch, "previous": best[0],
                          "previous_at": best[1], "at": event.get("t")})
        if (best is None or epoch > best[0]) and (generation, epoch) not in forged:
            highest[key] = (epoch, event.get("t"))
    return found

"""The chaos checker on hand-made histories: clean runs pass, and every kind of violation the
suite exists to catch is flagged (a lost ack, an unexpected model, an epoch regression, an
indeterminate write present on one gateway and not another, ...)."""

from __future__ import annotations

import pytest

from sie_chaos.checker import check, epoch_regressions, percentile
from sie_chaos.history import History, dump_jsonl, load_jsonl
from sie_chaos.report import render

BASELINE = {"BAAI/bge-m3": ["default", "dense"]}
GATEWAYS = ("gateway-0", "gateway-1")


class Run:
    """Builds a history the way the harness does, op by op."""

    def __init__(self) -> None:
        self.events: list[dict] = [{"type": "run", "t": 0, "seed": 3, "duration": 60},
                                   {"type": "baseline", "t": 0.1, "models": BASELINE}]
        self.ops = 0
        self.t = 1.0

    def op(self, model: str, profile: str, outcome: str | None) -> int:
        self.ops += 1
        self.t += 0.1
        self.events.append({"type": "invoke", "t": self.t, "op": self.ops, "client": 0,
                            "f": "add", "model": model, "profile": profile, "bundle": "default",
                            "key": f"k{self.ops}"})
        if outcome is not None:
            self.events.append({"type": "complete", "t": self.t + 0.05, "op": self.ops,
                                "outcome": outcome, "status": None, "attempts": 1})
        return self.ops

    def observe(self, node: str, epoch: int, generation: str = "g1", **extra) -> None:
        self.t += 0.1
        self.events.append({"type": "observe", "t": self.t, "node": node, "epoch": epoch,
                            "generation": generation, **extra})

    def fault(self, index: int, kind: str, seconds: float | None,
              whole_probe: float | None = None) -> None:
        self.events += [{"type": "fault", "t": self.t, "fault": index, "kind": kind,
                         "target": "x", "duration": 2.0},
                        {"type": "heal", "t": self.t + 2, "fault": index, "kind": kind},
                        {"type": "converged", "t": self.t + 3, "fault": index, "kind": kind,
                         "seconds": seconds,
                         **({"whole_probe": whole_probe} if whole_probe is not None else {})}]

    def final(self, config: dict, gateways: dict | None = None, *, problems=(),
              not_acked=None, converged_after: float | None = 0.4) -> list[dict]:
        gateways = gateways if gateways is not None else {g: config for g in GATEWAYS}
        self.events.append({
            "type": "final", "t": self.t + 5, "converged_after": converged_after,
            "problems": list(problems),
            "config": {"sync": {}, "models": config},
            "gateways": {name: {"sync": {}, "models": models,
                                "not_acked": (not_acked or {}).get(name, [])}
                         for name, models in gateways.items()},
            "workers": {}})
        return self.events


def with_baseline(**models) -> dict:
    merged = dict(BASELINE)
    merged.update({k.replace("_", "/"): v for k, v in models.items()})
    return merged


def kinds(verdict) -> list[str]:
    return [v["kind"] for v in verdict.violations]


def test_a_clean_history_passes_and_counts_everything():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    run.op("chaos/a", "p1", "ok")
    run.op("chaos/b", "p0", "failed")
    run.op("chaos/c", "p0", "indeterminate")   # applied after all: recovered
    run.op("chaos/d", "p0", "indeterminate")   # never applied: fine, absent everywhere
    run.observe("gateway-0", 1)
    run.observe("gateway-0", 3)
    run.fault(0, "nats_kill", 0.5)
    run.fault(1, "nats_kill", 1.5, whole_probe=1.9)  # an old history has no whole_probe
    run.fault(2, "store_fail", None)
    verdict = check(run.final(with_baseline(chaos_a=["p0", "p1"], chaos_c=["p0"])))
    assert verdict.ok, verdict.violations
    assert verdict.counts == {
        "attempted": 5, "acknowledged": 2, "failed": 1, "indeterminate": 2, "lost": 0,
        "recovered": 1, "unexpected": 0, "failed_present": 0, "divergent": 0,
        "baseline_missing": 0, "epoch_regressions": 0, "faults": 3}
    assert verdict.convergence["nats_kill"] == {"faults": 2, "p50": 0.5, "max": 1.5,
                                                "whole_probe_max": 1.9, "unconverged": 0}
    assert verdict.convergence["store_fail"]["unconverged"] == 1
    assert verdict.final_convergence == 0.4 and verdict.seed == 3


def test_a_lost_ack_is_flagged_with_where_it_is_missing():
    run = Run()
    lost = run.op("chaos/a", "p0", "ok")
    run.op("chaos/a", "p1", "ok")
    everywhere = with_baseline(chaos_a=["p0", "p1"])
    gateway_1 = with_baseline(chaos_a=["p1"])
    verdict = check(run.final(everywhere, {"gateway-0": everywhere, "gateway-1": gateway_1}))
    assert kinds(verdict) == ["lost"]
    assert verdict.violations[0]["op"] == lost
    assert verdict.violations[0]["missing_on"] == ["gateway-1"]
    assert verdict.counts["lost"] == 1


def test_an_ack_missing_from_sie_config_itself_is_lost_everywhere():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    verdict = check(run.final(with_baseline()))
    assert kinds(verdict) == ["lost"]
    assert verdict.violations[0]["missing_on"] == ["sie-config", *GATEWAYS]


def test_an_unexpected_model_is_flagged():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    models = with_baseline(chaos_a=["p0"], chaos_ghost=["p0"])
    verdict = check(run.final(models))
    assert kinds(verdict) == ["unexpected"]
    assert verdict.violations[0]["model"] == "chaos/ghost"
    assert verdict.violations[0]["present_on"] == ["sie-config", *GATEWAYS]


def test_an_unattempted_profile_on_an_attempted_model_is_unexpected():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    verdict = check(run.final(with_baseline(chaos_a=["p0", "p9"])))
    assert kinds(verdict) == ["unexpected"] and verdict.violations[0]["profile"] == "p9"


def test_an_indeterminate_write_on_one_gateway_but_not_another_is_flagged():
    run = Run()
    op = run.op("chaos/x", "p0", "indeterminate")
    with_x = with_baseline(chaos_x=["p0"])
    verdict = check(run.final(with_x, {"gateway-0": with_x, "gateway-1": with_baseline()}))
    assert kinds(verdict) == ["divergent"]
    violation = verdict.violations[0]
    assert violation["ops"] == [op] and violation["outcome"] == ["indeterminate"]
    assert violation["present_on"] == ["sie-config", "gateway-0"]
    assert violation["absent_on"] == ["gateway-1"]


def test_an_indeterminate_write_absent_on_sie_config_but_present_on_a_gateway_is_flagged():
    run = Run()
    run.op("chaos/x", "p0", "indeterminate")
    with_x = with_baseline(chaos_x=["p0"])
    verdict = check(run.final(with_baseline(), {"gateway-0": with_x, "gateway-1": with_x}))
    assert kinds(verdict) == ["divergent"]
    assert verdict.counts["recovered"] == 0


def test_an_operation_that_never_completed_counts_as_indeterminate():
    run = Run()
    run.op("chaos/x", "p0", None)
    verdict = check(run.final(with_baseline(chaos_x=["p0"])))
    assert verdict.ok
    assert verdict.counts["indeterminate"] == 1 and verdict.counts["recovered"] == 1


def test_a_failed_write_that_is_present_is_flagged():
    run = Run()
    run.op("chaos/f", "p0", "failed")
    verdict = check(run.final(with_baseline(chaos_f=["p0"])))
    assert kinds(verdict) == ["failed_present"]


def test_a_missing_baseline_model_is_flagged():
    run = Run()
    verdict = check(run.final({"BAAI/bge-m3": ["default"]}))
    assert kinds(verdict) == ["baseline_missing"]
    assert verdict.violations[0]["profile"] == "dense"


def test_an_epoch_regression_within_a_generation_is_flagged():
    run = Run()
    run.observe("gateway-0", 5)
    run.observe("gateway-0", 7)
    run.observe("gateway-0", 6)          # went back: flagged
    run.observe("gateway-1", 7)
    run.observe("gateway-1", 0, "")      # restarted, not bootstrapped: no generation, not judged
    run.observe("gateway-1", 2, "g2")    # another generation: a new sequence
    run.observe("gateway-1", 7)          # back on g1 at the same epoch: fine
    verdict = check(run.final(with_baseline()))
    assert kinds(verdict) == ["epoch_regression"]
    regression = verdict.violations[0]
    assert (regression["node"], regression["epoch"], regression["previous"]) == ("gateway-0",
                                                                                  6, 7)
    assert verdict.counts["epoch_regressions"] == 1


def test_sie_config_epoch_regressions_count_too():
    events = [{"type": "observe", "t": 1, "node": "sie-config", "epoch": 9, "generation": "g"},
              {"type": "observe", "t": 2, "node": "sie-config", "epoch": 8, "generation": "g"}]
    assert [r["node"] for r in epoch_regressions(events)] == ["sie-config"]


def test_an_unbootstrapped_observation_is_not_judged():
    events = [{"type": "observe", "t": 1, "node": "gateway-0", "epoch": 9, "generation": "g"},
              {"type": "observe", "t": 2, "node": "gateway-0", "epoch": 0, "generation": "g",
               "bootstrapped": False}]
    assert epoch_regressions(events) == []


def test_no_convergence_at_the_end_is_flagged():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    models = with_baseline(chaos_a=["p0"])
    verdict = check(run.final(models, problems=["gateway-1 epoch 4 != sie-config's 5"],
                              converged_after=None))
    assert kinds(verdict) == ["not_converged"]
    run = Run()
    verdict = check(run.final(with_baseline(), not_acked={"gateway-0": ["chaos/a"]},
                              converged_after=None))
    assert kinds(verdict) == ["not_converged"]
    assert verdict.violations[0]["node"] == "gateway-0"


def test_an_unreadable_model_list_is_flagged():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    models = with_baseline(chaos_a=["p0"])
    verdict = check(run.final(models, {"gateway-0": models, "gateway-1": None}))
    assert kinds(verdict) == ["not_converged"]
    assert verdict.violations[0]["node"] == "gateway-1"


def test_a_run_without_final_observations_or_with_a_failed_heal_fails():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    assert kinds(check(run.events)) == ["incomplete"]
    run.events.append({"type": "heal_failed", "t": 9, "fault": 2, "kind": "config_kill",
                       "target": "sie-config", "error": "exited with code 1"})
    assert kinds(check(run.events)) == ["heal_failed", "incomplete"]


def test_the_verdict_survives_a_round_trip_through_json_lines(tmp_path):
    run = Run()
    run.op("chaos/a", "p0", "ok")
    events = run.final(with_baseline())
    path = tmp_path / "history.jsonl"
    dump_jsonl(events, path)
    again = check(load_jsonl(path))
    assert again.summary() == check(events).summary()
    assert not again.ok


def test_history_streams_each_event_as_one_json_line(tmp_path):
    path = tmp_path / "h.jsonl"
    with open(path, "w") as sink:
        history = History(sink, clock=iter([10.0, 10.5, 11.25]).__next__)
        history.record("invoke", op=1)
        history.record("complete", op=1, outcome="ok")
        assert path.read_text().count("\n") == 2  # written as they happen
    events = load_jsonl(path)
    assert events == [{"type": "invoke", "t": 0.5, "op": 1},
                      {"type": "complete", "t": 1.25, "op": 1, "outcome": "ok"}]


@pytest.mark.parametrize("values, q, expected", [
    ([], 0.5, None), ([3.0], 0.5, 3.0), ([1.0, 2.0], 0.5, 1.0), ([1.0, 2.0, 3.0], 0.5, 2.0),
    ([4.0, 1.0, 3.0, 2.0], 1.0, 4.0)])
def test_percentile_is_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_the_report_shows_the_table_and_the_violations():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    run.fault(0, "nats_pause", 0.25)
    text = render(check(run.final(with_baseline())))
    assert "| attempted | acknowledged | failed | indeterminate | lost |" in text
    assert "| nats_pause" in text and "0.25s" in text
    assert "FAILED: 1 violation(s)" in text and "lost: op=1" in text


def restarted(models, epoch=5, generation="g1") -> dict:
    return {"type": "restarted", "t": 99, "models": models,
            "sync": {"epoch": epoch, "generation": generation}}


def test_a_restart_that_serves_the_same_models_passes_and_one_that_does_not_fails():
    run = Run()
    run.op("chaos/a", "p0", "ok")
    run.op("chaos/b", "p0", "indeterminate")
    models = with_baseline(chaos_a=["p0"], chaos_b=["p0"])
    events = run.final(models)
    events[-1]["config"]["sync"] = {"epoch": 5, "generation": "g1"}
    assert check(events + [restarted(models)]).ok
    assert check(events + [restarted(models, epoch=7)]).ok  # a failed commit may count ahead
    # the indeterminate write vanished on restart: it was served but not stored
    verdict = check(events + [restarted(with_baseline(chaos_a=["p0"]))])
    assert kinds(verdict) == ["not_durable"] and verdict.violations[0]["model"] == "chaos/b"
    verdict = check(events + [restarted(models, epoch=4)])
    assert kinds(verdict) == ["epoch_regression"] and verdict.counts["epoch_regressions"] == 1
    assert kinds(check(events + [restarted(models, generation="g2")])) == ["not_durable"]


def test_a_success_that_acknowledges_another_write_is_flagged():
    run = Run()
    op = run.op("chaos/a", "p0", "ok")
    run.events[-1]["bad_ack"] = "profile 'p0' neither created nor skipped (['p1'])"
    verdict = check(run.final(with_baseline(chaos_a=["p0"])))
    assert kinds(verdict) == ["bad_ack"] and verdict.violations[0]["op"] == op


def test_healing_back_from_a_forged_epoch_is_not_a_regression_but_a_real_drop_still_is():
    observe = lambda t, epoch: {"type": "observe", "t": t, "node": "gateway-0", "epoch": epoch,
                                "generation": "g"}
    forged = {"type": "forged", "fault": 3, "published": 10, "epochs": [["g", 8]]}
    healed = [observe(1, 7), observe(2, 8), observe(3, 7)]  # applied the forged 8, healed to 7
    assert epoch_regressions([forged, *healed]) == []
    assert len(epoch_regressions(healed)) == 1                 # without the forgery: flagged
    assert len(epoch_regressions([forged, observe(1, 9), observe(2, 8)])) == 1


def test_the_export_rate_reaches_the_summary_and_the_table():
    events = [{"type": "exports", "t": 9, "total": 12, "full": 4, "bundle": 8, "minutes": 2.0,
               "per_minute": 6.0, "peak_per_minute": 9}]
    verdict = check(events)
    assert verdict.summary()["exports"]["per_minute"] == 6.0
    assert "6.0/min; worst minute 9" in render(verdict)

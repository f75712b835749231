"""The report: the checker's verdict as markdown tables a person reads at a glance."""

from __future__ import annotations

from sie_chaos.checker import Verdict

COUNT_COLUMNS = (("attempted", "attempted"), ("acknowledged", "acknowledged"),
                 ("failed", "failed"), ("indeterminate", "indeterminate"), ("lost", "lost"),
                 ("recovered", "recovered"), ("unexpected", "unexpected"),
                 ("failed_present", "failed present"), ("divergent", "divergent"),
                 ("epoch_regressions", "epoch regressions"))


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def render(verdict: Verdict, max_violations: int = 20) -> str:
    counts = verdict.counts
    parts = [markdown_table([label for _, label in COUNT_COLUMNS],
                            [[str(counts.get(key, 0)) for key, _ in COUNT_COLUMNS]])]
    rows = [[kind, str(c["faults"]), seconds(c["p50"]), seconds(c["max"]),
             seconds(c.get("whole_probe_max")), str(c["unconverged"])]
            for kind, c in verdict.convergence.items()]
    rows.append(["final (writes stopped → all equal and acked)", "", "",
                 seconds(verdict.final_convergence), "", ""])
    parts.append(markdown_table(["fault kind", "faults", "convergence p50", "max",
                                 "max, whole probe", "not converged in time"], rows))
    parts.append("convergence: from the heal until the last gateway or worker answered caught "
                 "up (and stayed so); \"whole probe\": until the first probe in which all had "
                 "finished, which adds up to one probe's duration.")
    exports = verdict.extra.get("exports")
    if exports:
        parts.append(f"sie-config export requests (bootstraps and resyncs of gateways and "
                     f"workers): {exports.get('total')} in {exports.get('minutes')} min = "
                     f"{exports.get('per_minute')}/min; worst minute "
                     f"{exports.get('peak_per_minute')} (full {exports.get('full')}, "
                     f"bundle {exports.get('bundle')})")
    encodes = verdict.extra.get("encodes")
    if encodes:
        parts.append("encodes by outcome: " + ", ".join(
            f"{k} {v}" for k, v in sorted(encodes.items(), key=lambda kv: -kv[1])))
    if verdict.ok:
        parts.append(f"OK: no violations (seed {verdict.seed}, duration {verdict.duration}s).")
    else:
        lines = [f"FAILED: {len(verdict.violations)} violation(s) "
                 f"(seed {verdict.seed}, duration {verdict.duration}s):"]
        for violation in verdict.violations[:max_violations]:
            fields = ", ".join(f"{k}={v}" for k, v in violation.items() if k != "kind")
            lines.append(f"  - {violation['kind']}: {fields}")
        if len(verdict.violations) > max_violations:
            lines.append(f"  ... and {len(verdict.violations) - max_violations} more "
                         "(see the history's summary line)")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)

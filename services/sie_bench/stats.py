"""Distributions, result rows, the markdown table and the JSON report.

A row is one measured quantity: its samples (kept whole in the JSON), a summary (min, p50, p90,
p99, max, mean; percentiles by linear interpolation between closest ranks), and optionally a
target with the statistic it is judged on. Nothing here measures; scenarios hand in samples.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linear between closest ranks."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = rank - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    values = sorted(float(v) for v in samples)
    return {
        "n": len(values),
        "min": values[0],
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
        "mean": sum(values) / len(values),
    }


@dataclass(frozen=True)
class Target:
    """`stat op limit`, e.g. p99 <= 20 (ms)."""

    stat: str  # one of the summary keys
    op: str  # "<=" or ">="
    limit: float

    def met(self, summary: dict[str, float]) -> bool:
        value = summary[self.stat]
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def text(self, unit: str) -> str:
        return f"{self.stat} {self.op} {self.limit:g} {unit}".strip()


@dataclass
class Row:
    scenario: str  # module that measured it
    name: str
    unit: str
    samples: list[float]
    target: Target | None = None
    note: str = ""
    summary: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError(f"{self.name}: no samples")
        self.summary = summarize(self.samples)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.summary)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "name": self.name,
            "unit": self.unit,
            "summary": self.summary,
            "target": None if self.target is None else {
                "stat": self.target.stat, "op": self.target.op, "limit": self.target.limit},
            "met": self.met,
            "note": self.note,
            "samples": self.samples,
        }


def fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(rows: Sequence[Row]) -> str:
    head = ("| scenario | n | min | p50 | p90 | p99 | max | unit | target | met |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|---|---|")
    lines = [head]
    for row in rows:
        s = row.summary
        target = row.target.text(row.unit) if row.target else "-"
        met = {True: "yes", False: "**NO**", None: "-"}[row.met]
        name = row.name + (f" ({row.note})" if row.note else "")
        lines.append(f"| {name} | {s['n']} | {fmt(s['min'])} | {fmt(s['p50'])} | {fmt(s['p90'])} | "
                     f"{fmt(s['p99'])} | {fmt(s['max'])} | {row.unit} | {target} | {met} |")
    return "\n".join(lines)


def markdown_facts(facts: dict[str, Any]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in facts.items())


def json_report(facts: dict[str, Any], settings: dict[str, Any], rows: Sequence[Row],
                errors: dict[str, str]) -> str:
    return json.dumps({"machine": facts, "settings": settings,
                       "rows": [row.to_json() for row in rows], "errors": errors}, indent=1)

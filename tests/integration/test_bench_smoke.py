"""`sie-bench --profile smoke`: every scenario runs at its smallest and reports well-formed numbers.

Only the report's shape is checked: every scenario produced its rows, every number is finite and
positive, the machine facts are there. Timing targets are the benchmark's business, not the
suite's: a slow CI machine must not fail the build.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.bench]

EXPECTED = {
    "propagation": ["POST 201 → model served by both gateways",
                    "POST 201 → /status all acked on both gateways"],
    "hotreads": ["hot reads GET /v1/configs/models", "hot reads GET /v1/configs/models/{id}/status",
                 "sie-config hot reads GET /v1/configs/epoch",
                 "sie-config GET /v1/configs/epoch / bare ASGI (per round)"],
    "recovery": ["NATS restarted → write made just before is on every gateway",
                 "delta lost by one gateway (gap) → recovered"],
    "scale": ["write latency p50 ratio", "gateway cold bootstrap of", "sie-config RSS with"],
    "sessions": ["status staleness,", "gateway CPU with"],
    "pages": ["gateway CPU, 50 sessions, no page open", "gateway CPU, 50 sessions, 5 fleet",
              "cost of 5 open fleet pages", "fleet feed's own CPU", "all 50 workers switch"],
    "encode": ["cluster encode throughput", "cluster / in-process throughput",
               "one-item request through the inference port",
               "one-item request through the main port", "one-item request: hypercorn's own floor",
               "model POSTed → first 200"],
}
# a difference of two noisy means: any finite number, negative included
DIFFERENCES = ("cost of",)


def test_smoke_profile_reports_every_scenario(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "sie_bench", "--profile", "smoke", "--json", str(out),
         "--workdir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    report = json.loads(out.read_text())

    assert report["errors"] == {}
    for key in ("nproc", "cpu", "python", "other load"):
        assert report["machine"][key]
    assert report["settings"]["profile"] == "smoke"

    rows = report["rows"]
    for scenario, names in EXPECTED.items():
        mine = [row for row in rows if row["scenario"] == scenario]
        for name in names:
            assert any(row["name"].startswith(name) for row in mine), (scenario, name)
    for row in rows:
        assert row["samples"], row["name"]
        values = list(row["summary"].values()) + row["samples"]
        difference = row["name"].startswith(DIFFERENCES)
        assert all(isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or difference)
                   for v in values), (row["name"], row["summary"])
        if row["target"] is not None:
            assert row["target"]["op"] in ("<=", ">=") and row["met"] in (True, False)

    # the markdown table on stdout has one line per row
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == len(rows) + 1

"""The short chaos run of CI: `sie-chaos --duration 100 --seed 1` against a real local cluster.

Every fault kind at least twice (NATS SIGKILL and SIGSTOP, sie-config SIGKILL mid-write, gateway
and worker SIGKILL, a failing store), about two minutes. It fails on any lost acknowledged write,
any unexpected model, any epoch regression, and any other violation the checker reports; the
table is printed (`pytest -s` shows it) and the history is kept next to the test's tmp dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from sie_chaos.nemesis import FAULT_KINDS

pytestmark = pytest.mark.chaos

DURATION = 100
SEED = 1


def test_chaos_short_run(tmp_path):
    history = tmp_path / "chaos-history.jsonl"
    command = [sys.executable, "-m", "sie_chaos", "--duration", str(DURATION), "--seed",
               str(SEED), "--json", str(history), "--data-dir", str(tmp_path / "cluster")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=DURATION + 420)
    print(run.stdout)
    print(run.stderr[-5000:], file=sys.stderr)
    events = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
    summary = events[-1]
    assert summary["type"] == "summary", f"no summary; exit {run.returncode}"
    counts = summary["counts"]
    faults = Counter(e["kind"] for e in events if e["type"] == "fault")
    assert set(faults) == set(FAULT_KINDS) and min(faults.values()) >= 2, faults
    assert counts["acknowledged"] > 100, counts
    assert counts["lost"] == 0, summary["violations"]
    assert counts["unexpected"] == 0, summary["violations"]
    assert counts["epoch_regressions"] == 0, summary["violations"]
    assert summary["ok"] and summary["violation_count"] == 0, summary["violations"]
    # encode clients ran beside the writers: some right answers, never a wrong vector or a hang
    encodes = summary["encodes"]
    assert encodes.get("ok", 0) > 20, encodes
    assert not {"wrong_vector", "hang"} & set(encodes), encodes
    assert "encodes by outcome: ok" in run.stdout
    assert run.returncode == 0, run.stdout[-3000:]

"""SIGKILL a real writer process mid-stream and check what the store promises after restart.

Promises (CONTRACT §2.7): every model file present is counted by the epoch, the epoch is at
least the number of model files, no file is half-written, and the epoch is never below one
the writer had already "published" (printed after commit_write returned).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sie_actors.store import ConfigStore

RUNS = 8
DEADLINE_SECONDS = 5.0

WRITER = r"""
import sys
from sie_actors.store import ConfigStore

store = ConfigStore.open(sys.argv[1])
published = open(sys.argv[2], "w", buffering=1)
for i in range(1, 100_000):
    store.commit_write(f"m-{i}", f"index: {i}\npadding: {'x' * 2000}\n", i)
    published.write(f"{i}\n")
"""

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def expected_text(i: int) -> str:
    return f"index: {i}\npadding: {'x' * 2000}\n"


def visible_models(base: Path) -> int:
    try:
        names = os.listdir(base / "models")
    except FileNotFoundError:
        return 0
    return sum(1 for n in names if n.endswith(".yaml") and not n.startswith("."))


def run_and_kill(base: Path, published_file: Path, target: int) -> None:
    """Start the writer, wait until ``target`` model files are visible, then SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(base), str(published_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while visible_models(base) < target:
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"writer exited early ({proc.returncode}): {stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"writer made fewer than {target} writes within {DEADLINE_SECONDS}s")
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


# Seeded, so a failing kill point can be replayed; each run still kills at a different moment.
SEED = 20261127


def test_sigkill_at_a_random_moment_leaves_a_consistent_store(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    for run in range(RUNS):
        base = tmp_path / f"run{run}"
        published_file = tmp_path / f"published{run}.txt"
        run_and_kill(base, published_file, target=rng.randint(3, 30))

        raw_epoch = (base / "epoch").read_bytes()
        assert raw_epoch.isdigit(), f"epoch file is not a whole integer: {raw_epoch!r}"
        store = ConfigStore.open(str(base))
        epoch = store.read_epoch()
        models = store.load_all_models()
        indices = sorted(int(model_id.removeprefix("m-")) for model_id in models)

        assert indices, "the writer was killed after writes became visible"
        assert all(i <= epoch for i in indices), f"model beyond epoch {epoch}: {indices[-3:]}"
        assert epoch >= len(indices)
        for model_id, text in models.items():
            assert text == expected_text(int(model_id.removeprefix("m-"))), f"torn file {model_id}"
        lines = published_file.read_text().split("\n")
        published = [int(line) for line in lines if line.strip().isdigit()]
        if published:
            assert epoch >= max(published), "an epoch already published was lost"

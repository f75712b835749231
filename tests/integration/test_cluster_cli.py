"""`sie-cluster up` as a user runs it: start, wait for the ready line, use it, Ctrl-C, nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from sie_actors.procs import free_port, free_port_block, wait_until

pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    """All processes whose parent chain leads to `pid` (children run in their own sessions)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cluster_up_serves_and_stops_cleanly(tmp_path):
    base, nats = free_port_block(20), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sie_cluster", "up", "--data-dir", str(tmp_path / "data"),
         "--base-port", str(base), "--nats-port", str(nats)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(l.startswith("cluster ready") for l in lines), 90,
                   what="the ready line")
        children = descendants(proc.pid)
        assert len(children) >= 7  # nats, sie-config, 2 gateways, 3 workers
        gateway = f"http://127.0.0.1:{base + 1}"
        status = httpx.get(gateway + "/v1/configs/models/BAAI/bge-m3/status").json()
        assert status["bundles"][0]["bundle_id"] == "default"
        wait_until(lambda: httpx.get(gateway + "/v1/configs/models/BAAI/bge-m3/status")
                   .json()["all_bundles_acked"], 20, what="seed model acked")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        reader.join(timeout=5)
        assert any("stopped" in l for l in lines), "".join(lines)
        left = [pid for pid in children if alive(pid)]
        assert left == [], f"processes left running: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""`sie-cluster up` as a user runs it: start, wait for the ready line, use it, Ctrl-C, nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import socket
import threading
from pathlib import Path

import httpx
import pytest

from sie_actors.procs import free_port, free_port_block, wait_until
from sie_cluster.cli import EXAMPLE_MODEL
from tests.integration.worker_support import acked_everywhere

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


def old_store(data: Path) -> None:
    """A store from an earlier session holding one API-added model."""
    store = data / "config-store"
    (store / "models").mkdir(parents=True)
    (store / "epoch").write_text("1")
    (store / "models" / "old__model.yaml").write_text(
        "sie_id: old/model\nprofiles:\n  default:\n    adapter_path: "
        "sie_server.adapters.sentence_transformer:X\n    max_batch_tokens: 8\n")


def test_cluster_up_serves_and_stops_cleanly(tmp_path):
    base, nats = free_port_block(110), free_port()   # the inference ports are BASE+101+i
    old_store(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sie_cluster", "up", "--data-dir", str(tmp_path / "data"),
         "--base-port", str(base), "--nats-port", str(nats), "--fresh"],
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
        wait_until(lambda: acked_everywhere([gateway], "BAAI/bge-m3"), 20,
                   what="seed model acked")
        # --fresh: the old store was moved aside, so sie-config restored nothing from it
        config = f"http://127.0.0.1:{base}"
        listed = {m["model_id"] for m in httpx.get(config + "/v1/configs/models").json()["models"]}
        assert "BAAI/bge-m3" in listed and "old/model" not in listed
        [moved] = (tmp_path / "data").glob("config-store.before-fresh-*")
        assert (moved / "models" / "old__model.yaml").exists()
        # each gateway's inference port serves the encode route (an unknown model: 404)
        text = "".join(lines)
        assert f"(encodes also on http://127.0.0.1:{base + 102})" in text
        r = httpx.post(f"http://127.0.0.1:{base + 101}/v1/encode/nobody/nothing",
                       json={"items": [{"text": "x"}]})
        assert r.status_code == 404 and "Unknown model" in r.json()["detail"]["message"]
        # the banner's session is the README's: same example file, in a temporary directory
        assert ("cat > minilm.yaml <<'YAML'\n" + EXAMPLE_MODEL.read_text() + "YAML\n") in text
        # a second cluster on the same data dir (other ports) is refused in one line
        second = subprocess.run(
            [sys.executable, "-m", "sie_cluster", "up", "--data-dir", str(tmp_path / "data"),
             "--base-port", str(base + 100), "--nats-port", str(free_port())],
            capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert second.stderr == (f"sie-cluster: data dir {tmp_path / 'data'} is in use by another "
                                 f"sie-cluster (pid {proc.pid}); stop that one (Ctrl-C in its "
                                 "terminal), or give this one its own --data-dir\n")
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: any("stopping (SIGINT)" in l for l in lines), 10,
                   what="the first Ctrl-C noticed")
        proc.send_signal(signal.SIGINT)  # an impatient second Ctrl-C: still a clean stop
        assert proc.wait(timeout=60) == 0
        reader.join(timeout=5)
        assert any("stopped" in l for l in lines), "".join(lines)
        assert not any("Traceback" in l or "KeyboardInterrupt" in l for l in lines), "".join(lines)
        left = [pid for pid in children if alive(pid)]
        assert left == [], f"processes left running: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_busy_port_is_one_line_naming_the_holder_and_the_flag(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sie_cluster", "up", "--data-dir", str(tmp_path / "data"),
             "--base-port", str(free_port_block(20)), "--nats-port", str(port)],
            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith(f"sie-cluster: port {port} for nats is already in use "
                                    f"(held by pid {os.getpid()} (")
    assert result.stderr.endswith("choose other ports with --nats-port\n")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr

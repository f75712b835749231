"""Fixtures shared by all tests: real nats-server processes, in-process services on port 0, and
service subprocesses. Nothing is assumed to be running beforehand."""

from __future__ import annotations

from pathlib import Path

import pytest

from sie_actors.procs import NatsServer, ServiceProcess, child_env

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(log_path=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def spawn(tmp_path):
    """Start service subprocesses (`python -m sie_config serve ...`); all are stopped at the end."""
    started: list[ServiceProcess] = []

    def _spawn(module: str, env: dict[str, str] | None = None, args: list[str] | None = None,
               ready_path: str = "/healthz", port: int | None = None,
               timeout: float = 30.0) -> ServiceProcess:
        name = f"{module}-{len(started)}"
        proc = ServiceProcess(name, module, args or [], port=port, env=env,
                              log_path=tmp_path / f"{name}.log")
        started.append(proc)
        return proc.start(timeout=timeout, ready_path=ready_path)

    yield _spawn
    for proc in started:
        proc.kill()


def base_env(**extra: str) -> dict[str, str]:
    """Environment for a child service: the project's seed dirs, no inherited tokens."""
    return child_env(**{"SIE_BUNDLES_DIR": str(REPO / "bundles"),
                        "SIE_MODELS_DIR": str(REPO / "models"), "POD_NAME": "sie-config-test",
                        **extra})

"""The process layer for sync code: test fixtures, `sie-bench`, sync tools.

A thin wrapper: each object owns one trio `Child` and every call runs it in the process
portal's loop (`portal.py` says why a portal). Nothing here starts, signals or probes a process
itself.
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from .child import Child
from .nats import nats_server_argv
from .polling import wait_until
from .portal import call
from .ports import LOOPBACK, free_port, port_accepts
from .spec import ProcessSpec, service_argv


class ManagedProcess:
    """A child process we can kill, pause, resume and restart with the same command line."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, *, port: int | None = None,
                 ready_path: str | None = None) -> None:
        self.child = Child(ProcessSpec(name, tuple(argv), env, port, ready_path), log_path)

    @property
    def name(self) -> str:
        return self.child.name

    @property
    def argv(self) -> tuple[str, ...]:
        return self.child.spec.argv

    @property
    def port(self) -> int | None:
        return self.child.spec.port

    @property
    def log_path(self) -> Path | None:
        return self.child.log_path

    @property
    def pid(self) -> int:
        pid = self.child.pid
        assert pid is not None, f"{self.name} was never started"
        return pid

    def start(self) -> "ManagedProcess":
        """Start, not waiting for readiness."""
        call(self.child.start)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Until the spec's readiness holds; `ChildExited` / `TimeoutError` with the log tail."""
        call(self.child.wait_ready, timeout)

    def alive(self) -> bool:
        return call(lambda: self.child.alive)

    def returncode(self) -> int | None:
        return call(lambda: self.child.returncode)

    def kill(self) -> int | None:
        return call(self.child.kill)

    def stop(self, timeout: float = 10.0) -> int | None:
        return call(self.child.stop, timeout)

    def pause(self) -> None:
        call(self.child.pause)

    def resume(self) -> None:
        call(self.child.resume)

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""


class NatsServer(ManagedProcess):
    """A real nats-server on a fixed loopback port, so clients can reconnect after a restart."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 store_dir: Path | None = None, *, name: str = "nats") -> None:
        port = port or free_port()
        self.store_dir = store_dir or _jetstream_dir(log_path)
        super().__init__(name, nats_server_argv(port, self.store_dir), log_path=log_path,
                         port=port)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> "NatsServer":
        super().start()
        self.wait_ready(timeout)
        return self

    def restart(self, timeout: float = 10.0) -> "NatsServer":
        self.kill()
        wait_until(lambda: not port_accepts(self.port), timeout, what="nats port released")
        return self.start(timeout)


def _jetstream_dir(log_path: Path | None) -> Path:
    """Where a server keeps JetStream's files when the caller did not say: beside its log
    (inside the caller's own directory, which it cleans up), else a temporary directory
    removed when this interpreter exits. It outlives `restart`, as a stream must."""
    if log_path is not None:
        return log_path.with_name(log_path.stem + "-jetstream")
    path = Path(tempfile.mkdtemp(prefix="sie-nats-js-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class ServiceProcess(ManagedProcess):
    """One of our services (`sie-config serve` …) on a loopback port."""

    def __init__(self, name: str, command: str, args: Sequence[str], *, port: int | None = None,
                 env: Mapping[str, str] | None = None, log_path: Path | None = None) -> None:
        port = port or free_port()
        super().__init__(name, service_argv(command, port, args), env, log_path, port=port,
                         ready_path="/healthz")

    @classmethod
    def planned(cls, spec: ProcessSpec, log_path: Path | None = None) -> "ServiceProcess":
        """A service whose spec a cluster plan wrote (`sie_cluster.topology.plan_cluster`), run
        by sync code (`sie-bench`)."""
        proc = cls.__new__(cls)
        proc.child = Child(spec, log_path)
        return proc

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def wait_healthy(self, timeout: float = 20.0, path: str = "/healthz") -> None:
        self.child.spec = dataclasses.replace(self.child.spec, ready_path=path)
        self.wait_ready(timeout)

    def start(self, timeout: float = 20.0, ready_path: str = "/healthz") -> "ServiceProcess":
        super().start()
        self.wait_healthy(timeout, ready_path)
        return self

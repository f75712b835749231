"""One child process, trio-native: the only code that starts, probes, signals and reaps one.

`sie-cluster up` and `sie-chaos` (through `ClusterRunner`) and the sync wrapper of tests and
`sie-bench` all run their processes through `Child`, so they share one set of mechanics:

- a child runs in its own session (process group), so a Ctrl-C in the terminal reaches only its
  parent, which decides the order of shutdown; stdin is /dev/null; stdout and stderr are
  appended to its log file, so a restarted child continues the same log (a `pipes` child talks
  over stdin/stdout instead);
- ready means: the port accepts (`ready_path` None), else `GET ready_path` answers 200; a child
  that exits first, or is not ready by the deadline, is an error that carries its log's tail;
- stop is SIGCONT (a paused child cannot act on SIGTERM), SIGTERM, and SIGKILL if it has not
  left by the deadline; kill is SIGCONT and SIGKILL; both reap the child.

A `trio.Process` belongs to the trio loop that opened it (its pidfd is registered there), so a
`Child` is started, waited for and stopped in one loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from .polling import wait_for

from .env import child_env
from .ports import port_accepts
from .spec import ProcessSpec

log = logging.getLogger("sie_actors.procs")

READY_POLL_S = 0.02  # loopback probes are cheap; a start is noticed within 20 ms
LOG_TAIL_CHARS = 3000


class ChildExited(RuntimeError):
    """The child exited while we waited for it to become ready."""


@dataclass(eq=False)
class Child:
    spec: ProcessSpec
    log_path: Path | None = None
    # stdin and stdout are pipes to the parent (a helper driven over a line protocol, as
    # sie-bench's fake fleet); stderr still goes to the log
    pipes: bool = False
    process: trio.Process | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self) -> None:
        """Open the process (not waiting for readiness); refused while it still runs."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        # the planners' environments are already `child_env` output; unbuffered output keeps a
        # hand-given one's log complete up to a SIGKILL as well
        env = child_env() if self.spec.env is None else {"PYTHONUNBUFFERED": "1", **self.spec.env}
        with self._output() as out:
            self.process = await trio.lowlevel.open_process(
                list(self.spec.argv), env=env, start_new_session=True, stderr=out,
                stdin=subprocess.PIPE if self.pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.pipes else out)

    def _output(self) -> contextlib.AbstractContextManager:
        if self.log_path is None:
            return contextlib.nullcontext(subprocess.DEVNULL)
        return open(self.log_path, "ab")

    async def wait(self) -> int:
        """Until the child exits (reaping it); its exit code."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return await self.process.wait()

    async def wait_ready(self, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        """Until the spec's readiness check passes.

        Raises `ChildExited` as soon as the child is gone and `TimeoutError` at the deadline,
        both with the tail of its log: the reason is nearly always in there.
        """
        async def ready() -> bool:
            answered = await self._probe(client)
            if not self.alive:  # also when something else answers on its port
                raise ChildExited(f"{self.name} exited with code {self.returncode}"
                                  f" before it was ready:\n{self.log_tail()}")
            return answered

        async with contextlib.AsyncExitStack() as stack:
            if client is None and self.spec.ready_path is not None:
                client = await stack.enter_async_context(httpx.AsyncClient())
            try:
                await wait_for(ready, timeout, self._readiness(), READY_POLL_S)
            except trio.TooSlowError:
                raise TimeoutError(f"{self.name} not ready after {timeout}s "
                                   f"({self._readiness()})\n--- {self.name} log ---\n"
                                   f"{self.log_tail()}") from None

    async def _probe(self, client: httpx.AsyncClient | None) -> bool:
        if self.spec.ready_path is None:
            return await trio.to_thread.run_sync(port_accepts, self.spec.port)
        try:
            response = await client.get(self.spec.url + self.spec.ready_path, timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _readiness(self) -> str:
        if self.spec.ready_path is None:
            return f"port {self.spec.port} accepting"
        return f"GET {self.spec.url}{self.spec.ready_path} answering 200"

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, SIGKILL if it has not left after `timeout` s; reaped. Its exit code."""
        if self.process is None:
            return None
        if self.alive:
            self.resume()  # a paused child cannot act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(timeout):
                return await self.process.wait()
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.process.kill()
        return await self.process.wait()

    async def kill(self) -> int | None:
        """SIGKILL, reaped: the fault a crash causes, with no chance to clean up."""
        if self.process is None:
            return None
        if self.alive:
            self.resume()
            self.process.kill()
        return await self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: a silent partition (connections stay open, nothing answers)."""
        if self.alive:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGCONT)

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the log file (read from its end: a long run's log can be large)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * chars))
            return f.read().decode(errors="replace")[-chars:]

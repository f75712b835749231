"""Running a ClusterPlan: start in order, wait for readiness, keep children alive, stop cleanly.

Every child runs in its own session (process group), so a Ctrl-C in the terminal reaches only
us, and we decide the order of shutdown: gateways and workers first, then sie-config, NATS last,
each with SIGTERM and a deadline before SIGKILL. A child that dies while the cluster runs is
reported and restarted with backoff; the cluster never exits because one child did.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from sie_actors.procs import port_accepts
from sie_actors.runtime import Backoff

from sie_cluster.topology import ClusterPlan, ProcessSpec

log = logging.getLogger("sie_cluster")


@dataclass
class Child:
    spec: ProcessSpec
    log_path: Path
    process: trio.Process | None = None
    restarts: int = 0
    stopping: bool = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


async def _start(child: Child) -> None:
    with open(child.log_path, "ab") as out:
        child.process = await trio.lowlevel.open_process(
            list(child.spec.argv), env=child.spec.env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)


async def _ready(spec: ProcessSpec, client: httpx.AsyncClient) -> bool:
    if spec.ready_path is None:
        return await trio.to_thread.run_sync(port_accepts, spec.port)
    try:
        return (await client.get(spec.url + spec.ready_path, timeout=1.0)).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_ready(child: Child, client: httpx.AsyncClient, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not await _ready(child.spec, client):
            if not child.alive:
                tail = child.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{child.spec.name} exited with code "
                                   f"{child.process.returncode}:\n{tail}")
            await trio.sleep(0.05)


async def stop_child(child: Child, timeout: float = 10.0) -> None:
    child.stopping = True
    if not child.alive:
        return
    child.process.send_signal(signal.SIGCONT)  # a paused child cannot act on SIGTERM
    child.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(timeout):
        await child.process.wait()
        return
    log.warning("%s did not stop in %.0fs; killing it", child.spec.name, timeout)
    child.process.kill()
    await child.process.wait()


class ClusterRunner:
    def __init__(self, plan: ClusterPlan, *, ready_timeout: float = 60.0,
                 report=print, restart: bool = True) -> None:
        self.plan = plan
        self.ready_timeout = ready_timeout
        self.report = report
        self.restart = restart
        logs = plan.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.children = {spec.name: Child(spec, logs / f"{spec.name}.log")
                         for spec in plan.processes}

    def child(self, name: str) -> Child:
        return self.children[name]

    async def run(self, stop: trio.Event, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Start everything, report started, supervise until `stop` is set, then stop all."""
        try:
            async with trio.open_nursery() as nursery:
                async with httpx.AsyncClient() as client:
                    for child in self.children.values():
                        if port_accepts(child.spec.port):
                            raise RuntimeError(
                                f"port {child.spec.port} for {child.spec.name} is already in use"
                                " (another cluster running? see --base-port / --nats-port)")
                        await _start(child)
                        await wait_ready(child, client, self.ready_timeout)
                if self.restart:
                    for child in self.children.values():
                        nursery.start_soon(self._watch, child)
                task_status.started(self)
                await stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.stop_all()

    async def _watch(self, child: Child) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        async with httpx.AsyncClient() as client:
            while True:
                code = await child.process.wait()
                if child.stopping:
                    return
                child.restarts += 1
                self.report(f"!! {child.spec.name} exited with code {code}; restarting "
                            f"(restart #{child.restarts}, log: {child.log_path})")
                await trio.sleep(backoff.next_delay())
                await _start(child)
                try:
                    await wait_ready(child, client, self.ready_timeout)
                    self.report(f"   {child.spec.name} is back at {child.spec.url}")
                    backoff.reset()
                except (RuntimeError, trio.TooSlowError) as exc:
                    self.report(f"!! {child.spec.name} did not become ready: {exc}")

    async def restart_child(self, name: str) -> Child:
        """Start an exited child again (same command line, same port) and wait until it is ready.

        For tools that decide restarts themselves (`restart=False`), such as sie-chaos's nemesis.
        """
        child = self.children[name]
        if child.alive:
            raise RuntimeError(f"{name} is still running")
        child.stopping = False
        await _start(child)
        async with httpx.AsyncClient() as client:
            await wait_ready(child, client, self.ready_timeout)
        return child

    async def stop_all(self) -> None:
        plan = self.plan
        async with trio.open_nursery() as nursery:
            for spec in (*plan.gateways, *plan.workers):
                nursery.start_soon(stop_child, self.children[spec.name])
        await stop_child(self.children[plan.config.name])
        await stop_child(self.children[plan.nats.name])

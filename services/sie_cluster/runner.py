"""Supervising a ClusterPlan: start in order, keep children alive, stop in order.

The process mechanics (own session, log, readiness, SIGTERM then SIGKILL) are the one process
layer's (`sie_actors.procs.Child`); this module decides only order and restarts. Shutdown goes
gateways and workers first, then sie-config, NATS last. A child that dies while the cluster runs
is reported and restarted with backoff; the cluster never exits because one child did.
"""

from __future__ import annotations

import httpx
import trio

from sie_actors.procs import Child, ChildExited, port_accepts
from sie_actors.runtime import Backoff

from sie_cluster.topology import ClusterPlan


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
        self.restarts = dict.fromkeys(self.children, 0)
        self._stopping: set[str] = set()  # stopped on purpose: not restarted

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
                                f"port {child.spec.port} for {child.name} is already in use"
                                " (another cluster running? see --base-port / --nats-port)")
                        await child.start()
                        await child.wait_ready(self.ready_timeout, client)
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
                code = await child.wait()
                if child.name in self._stopping:
                    return
                self.restarts[child.name] += 1
                self.report(f"!! {child.name} exited with code {code}; restarting "
                            f"(restart #{self.restarts[child.name]}, log: {child.log_path})")
                await trio.sleep(backoff.next_delay())
                await child.start()
                try:
                    await child.wait_ready(self.ready_timeout, client)
                    self.report(f"   {child.name} is back at {child.spec.url}")
                    backoff.reset()
                except (ChildExited, TimeoutError) as exc:
                    self.report(f"!! {child.name} did not become ready: {exc}")

    async def restart_child(self, name: str) -> Child:
        """Start an exited child again (same command line, same port) and wait until it is ready.

        For tools that decide restarts themselves (`restart=False`), such as sie-chaos's nemesis.
        """
        child = self.children[name]
        if child.alive:
            raise RuntimeError(f"{name} is still running")
        self._stopping.discard(name)
        await child.start()
        await child.wait_ready(self.ready_timeout)
        return child

    async def stop_child(self, name: str) -> None:
        self._stopping.add(name)
        await self.children[name].stop()

    async def stop_all(self) -> None:
        plan = self.plan
        async with trio.open_nursery() as nursery:
            for spec in (*plan.gateways, *plan.workers):
                nursery.start_soon(self.stop_child, spec.name)
        await self.stop_child(plan.config.name)
        await self.stop_child(plan.nats.name)

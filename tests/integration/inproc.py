"""Run a service inside the test's trio nursery on a free loopback port.

Faster than a subprocess and just as real over HTTP (hypercorn, the actor tree, the store); tests
that kill or pause a process use subprocesses instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import trio


from sie_config.main import run_service
from sie_config.settings import ConfigSettings
from tests.conftest import base_env


@dataclass
class RunningService:
    url: str
    shutdown: trio.Event
    done: trio.Event

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10.0)

    async def stop(self) -> None:
        self.shutdown.set()
        with trio.fail_after(10):
            await self.done.wait()


async def start_service(nursery: trio.Nursery, run, settings) -> RunningService:
    """Run `run(settings, shutdown)` in `nursery` until its `stop()`; URL of its bound port."""
    shutdown, done = trio.Event(), trio.Event()

    async def runner(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await run(settings, shutdown, task_status=task_status)
        finally:
            done.set()

    urls = await nursery.start(runner)
    return RunningService(url=urls[0], shutdown=shutdown, done=done)


async def start_config(nursery: trio.Nursery, **env: str) -> RunningService:
    settings = ConfigSettings.from_env(base_env(**env), host="127.0.0.1", port=0)
    return await start_service(nursery, run_service, settings)


async def start_gateway(nursery: trio.Nursery, workers: tuple[str, ...] = (),
                        **env: str) -> RunningService:
    from sie_gateway.main import run_service as run_gateway
    from sie_gateway.settings import GatewaySettings

    environ = {k: v for k, v in base_env(**env).items()
               if k not in ("SIE_BUNDLES_DIR", "SIE_MODELS_DIR") or k in env}
    settings = GatewaySettings.from_env(environ, workers=workers, host="127.0.0.1", port=0)
    return await start_service(nursery, run_gateway, settings)


async def start_worker(nursery: trio.Nursery, **env: str) -> RunningService:
    from sie_worker.main import run_service as run_worker
    from sie_worker.settings import WorkerSettings

    settings = WorkerSettings.from_env(base_env(**env), host="127.0.0.1", port=0)
    return await start_service(nursery, run_worker, settings)

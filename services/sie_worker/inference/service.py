"""The worker's inference child: its model hosts, the pull consumer and (optionally) preload.

Supervised as one child of the worker's tree; loaded models are published in the worker's view
(`loaded_models` in every status frame) as soon as a load settles.
"""

from __future__ import annotations

import trio

from sie_actors.nats.link import NatsLink

from ..view import ViewCell
from .consumer import ConsumerSettings, WorkConsumer
from .hosts import ModelHosts


async def preload(cell: ViewCell, hosts: ModelHosts) -> None:
    """Start a host for every model of the bundle as its config arrives."""
    seen = None
    while True:
        view = await cell.wait_changed(seen)
        seen = view
        for entry in view.models:
            hosts.host(entry)


async def run_inference(link: NatsLink, cell: ViewCell, consumer_settings: ConsumerSettings,
                        metrics, *, preload_models: bool, threads: int | None = None,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    async with trio.open_nursery() as nursery:
        def publish_loaded() -> None:
            cell.publish(cell.current.evolve(loaded_models=hosts.loaded()))

        hosts = ModelHosts(nursery, publish_loaded, metrics, threads=threads)
        try:
            if preload_models:
                nursery.start_soon(preload, cell, hosts)
            await WorkConsumer(link, consumer_settings, hosts, lambda: cell.current.registry,
                               metrics).run()
        finally:
            with trio.CancelScope(shield=True):
                await hosts.aclose()

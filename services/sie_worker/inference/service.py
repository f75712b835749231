"""The worker's inference child: its model hosts, the pull consumer and (optionally) preload.

Supervised as one child of the worker's tree; loaded models are published in the worker's view
(`loaded_models` in every status frame) as soon as a load settles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import trio

from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.loading import check_servable
from sie_actors.nats.link import NatsLink

from ..view import ViewCell
from .consumer import ConsumerSettings, WorkConsumer
from .hosts import ModelHosts


async def preload(cell: ViewCell, hosts: ModelHosts) -> None:
    """Start a host for each model of the bundle this worker can serve, as its config arrives.

    A model it cannot serve (no default profile, an adapter this worker does not have) is left
    for a request to name; that request gets the terminal MODEL_LOAD_FAILED. Preloading it would
    spend a thread and a status frame on a known failure, for every such model of the bundle.
    Each config is judged once: the registry shares unchanged configs between snapshots."""
    seen, registry = None, None
    judged: dict[str, Mapping[str, Any]] = {}
    while True:
        view = await cell.wait_changed(seen)
        seen = view
        if view.registry is registry:
            continue                   # only loaded_models or readiness changed
        registry = view.registry
        before, judged = judged, {}          # models removed since are forgotten
        for entry in view.models:
            judged[entry.model_id] = entry.config
            if hosts.has(entry.model_id) or before.get(entry.model_id) is entry.config:
                continue
            try:
                check_servable(entry.config)
            except ModelLoadFailed:
                continue
            hosts.host(entry)


async def run_inference(link: NatsLink, cell: ViewCell, consumer_settings: ConsumerSettings,
                        metrics, *, preload_models: bool, threads: int | None = None,
                        graph_cache: Path | None = None,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    async with trio.open_nursery() as nursery:
        def publish_loaded() -> None:
            loaded = hosts.loaded()
            if loaded != cell.current.loaded_models:
                cell.publish(cell.current.evolve(loaded_models=loaded))

        hosts = ModelHosts(nursery, publish_loaded, metrics, threads=threads,
                           graph_cache=graph_cache)
        try:
            if preload_models:
                nursery.start_soon(preload, cell, hosts)
            await WorkConsumer(link, consumer_settings, hosts, lambda: cell.current.registry,
                               metrics).run()
        finally:
            with trio.CancelScope(shield=True):
                await hosts.aclose()

"""The worker's loaded models: one `ModelHost` per model id, started lazily or by preload.

A host is started the first time a work item or (with preload) a config names its model, and
kept; its load runs on the host's own thread. Loads take turns (one `load_slot` per worker):
building several graphs at once on a few cores would only slow each of them and add their peak
memory together. When a load settles, `on_change` is called so the worker's status frames report
the new `loaded_models` at once, and the load time or failure is counted per model.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path
from typing import Callable

import trio

from sie_actors.domain.registry import ModelEntry
from sie_actors.inference.loading import load_adapter

from .model_host import FAILED, LOADED, ModelHost

log = logging.getLogger("sie_worker.hosts")


class ModelHosts:
    def __init__(self, nursery: trio.Nursery, on_change: Callable[[], None], metrics,
                 *, threads: int | None = None, graph_cache: Path | None = None) -> None:
        self._nursery = nursery
        self._on_change = on_change
        self._metrics = metrics
        self._threads = threads
        self._graph_cache = graph_cache
        self._hosts: dict[str, ModelHost] = {}
        self._load_slot = threading.Semaphore(1)

    def has(self, model_id: str) -> bool:
        return model_id in self._hosts

    def host(self, entry: ModelEntry) -> ModelHost:
        """The model's host, started now if it has none."""
        host = self._hosts.get(entry.model_id)
        if host is None:
            host = ModelHost(entry.model_id, partial(load_adapter, entry.config,
                                                     threads=self._threads,
                                                     graph_cache=self._graph_cache),
                             load_slot=self._load_slot)
            self._hosts[entry.model_id] = host
            host.start()
            self._nursery.start_soon(self._watch, host)
        return host

    def serving(self, model_id: str) -> ModelHost | None:
        """The model's host if it is loaded, else None; never starts one (any thread may ask)."""
        host = self._hosts.get(model_id)
        return host if host is not None and host.state == LOADED else None

    def loaded(self) -> tuple[str, ...]:
        return tuple(sorted(m for m, h in self._hosts.items() if h.state == LOADED))

    async def _watch(self, host: ModelHost) -> None:
        state = await host.wait_settled()
        if state == LOADED:
            self._metrics.model_load_seconds.labels(host.model_id).observe(host.load_seconds or 0)
            log.info("model %s loaded in %.2f s", host.model_id, host.load_seconds or 0)
        elif state == FAILED:
            self._metrics.model_load_failures.labels(host.model_id).inc()
            log.warning("model %s failed to load: %s", host.model_id,
                        host.load_error.message if host.load_error else "?")
        self._on_change()

    async def aclose(self) -> None:
        for host in self._hosts.values():
            await host.aclose()

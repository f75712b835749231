"""sie-config assembled: load the seed and the store, then run the actor tree beside hypercorn.

Supervision tree:

    sie-config (Supervisor)
      nats       NatsLink.run      (only with SIE_NATS_URL; connects in the background)
      publisher  PublisherActor    (only with SIE_NATS_URL)
      writer     WriterActor       (the single writer)

The HTTP server starts after the tree and needs nothing from NATS, so reads, /healthz and
/readyz work while NATS is down (CONTRACT §2 item 8). Once it serves, every connect of the NATS
link is announced on `sie.config.started`, so mirrors check sie-config's epoch at once.
"""

from __future__ import annotations

import logging
import uuid
from functools import partial

import trio

from sie_actors.domain.delta import STARTED_SUBJECT, started_announcement
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import parse_stored_model_yaml
from sie_actors.gcpause import gc_paused
from sie_actors.http.app import create_app, serve_app
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.runtime import Mailbox, Supervisor, actor_child
from sie_actors.runtime.supervisor import ChildSpec
from sie_actors.seed import load_seed
from sie_actors.store import ConfigStore, StoreUnavailable
from sie_actors.actors.publisher import PublisherActor

from sie_config import boot_log
from sie_config.delta_log import DeltaLog
from sie_config.idempotency import WriterMemory
from sie_config.metrics import ConfigMetrics
from sie_config.routes import mount
from sie_config.settings import ConfigSettings
from sie_config.state import ConfigState
from sie_config.writer import StateCell, WriterActor

log = logging.getLogger("sie_config")


def initial_state(settings: ConfigSettings, store: ConfigStore | None) -> ConfigState:
    """Seed registry, then (with restore) every stored model through the one append path."""
    seed = load_seed(settings.bundles_dir, settings.models_dir)
    registry = seed.registry()
    raw: dict[str, str] = {}
    for model_id, text in seed.raw_yaml.items():
        entry = registry.get_model(model_id)
        if entry is not None:
            raw[entry.model_id] = text
    api: set[str] = set()
    epoch, generation = 0, uuid.uuid4().hex
    if store is not None:
        epoch = store.read_epoch()
        try:
            generation = store.read_or_create_generation()
        except StoreUnavailable as exc:
            # A read-only store without a generation file: serve reads under a temporary one.
            log.warning("could not persist a generation (%s); using a temporary one", exc)
        if settings.restore:
            stored = sorted(store.load_all_models().items())
            documents, sources = [], []
            for model_id, text in stored:
                try:
                    documents.append(parse_stored_model_yaml(text))
                    sources.append((model_id, text))
                except DomainError as exc:
                    log.error("Failed to restore model %s: %s", model_id, exc.message)
            registry, results = registry.append_many(documents)
            for (model_id, text), result in zip(sources, results):
                if isinstance(result, DomainError):
                    log.error("Failed to restore model %s: %s", model_id, result.message)
                    continue
                raw[result.model_id] = text
                api.add(result.model_id)
    log.info("registry: %d bundles, %d models (%d from the store), epoch %d, generation %s",
             len(registry.list_bundles()), len(registry.list_models()), len(api), epoch,
             generation)
    return ConfigState(registry=registry, raw_yaml=raw, api_models=frozenset(api), epoch=epoch,
                       generation=generation)


async def run_service(settings: ConfigSettings, shutdown: trio.Event, *,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    store = None
    if settings.store_url:
        store = await trio.to_thread.run_sync(
            partial(ConfigStore.open, settings.store_url, timeout=settings.store_timeout))

    window = min(boot_log.RECOVERED_EPOCHS, settings.delta_log_epochs)

    def load() -> tuple[ConfigState, list[tuple[str, float]] | None]:
        with gc_paused():  # a restore allocates in bulk: see sie_actors/gcpause.py
            state = initial_state(settings, store)
        return state, recent_writes(settings, store, window)

    state, recent = await trio.to_thread.run_sync(load)
    delta_log = DeltaLog(state.epoch, state.generation, max_epochs=settings.delta_log_epochs,
                         max_bytes=settings.delta_log_bytes)
    boot_log.seed(delta_log, state, recent, settings.router_id, window)
    cell = StateCell(state, delta_log)
    metrics = ConfigMetrics()
    metrics.on_state(state, cell.log.statistics())
    memory = WriterMemory(settings.idempotency_memory)

    children: list[ChildSpec] = []
    publisher_ref = None
    link = None
    if settings.nats_url:
        link = NatsLink(NatsSettings(url=settings.nats_url, name=settings.router_id,
                                     ping_interval=settings.nats_ping_interval,
                                     flush_timeout=settings.nats_flush_timeout),
                        on_state_change=lambda up: metrics.nats_connected.set(1 if up else 0))
        children.append(ChildSpec("nats", link.run))
        publisher_box = Mailbox(name="publisher")
        children.append(actor_child(
            "publisher", publisher_box,
            lambda box: PublisherActor(link, metrics.nats_publishes, mailbox=box)))
        publisher_ref = publisher_box.ref
    writer_box = Mailbox(name="writer")
    children.append(actor_child(
        "writer", writer_box,
        lambda box: WriterActor(cell, memory, store=store, router_id=settings.router_id,
                                publisher=publisher_ref,
                                nats_connected=(lambda: link.connected) if link else None,
                                idempotency_ttl=settings.idempotency_ttl, metrics=metrics,
                                max_payload=(lambda: link.max_payload) if link else None,
                                mailbox=box)))
    connects = link.reconnect_events() if link is not None else None
    supervisor = Supervisor("sie-config", children, max_restarts=settings.supervisor_max_restarts,
                            window=settings.supervisor_window, on_restart=metrics.count_restart)

    app = create_app("sie_config", metrics)
    mount(app, cell, settings.tokens, writer_box.ref, lambda: memory.completed,
          metrics=metrics)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            if store is not None:
                nursery.start_soon(prune_idempotency_forever, store, settings.idempotency_ttl)
            async with trio.open_nursery() as http:
                urls = await http.start(partial(serve_app, app, settings.host, settings.port,
                                                shutdown))
                log.info("sie-config serving on %s", ", ".join(urls))
                if link is not None and connects is not None:
                    nursery.start_soon(announce_started, link, connects, cell,
                                       settings.router_id)
                task_status.started(urls)
            # hypercorn returned: `shutdown` was set and in-flight requests are done.
            nursery.cancel_scope.cancel()
    finally:
        if store is not None:  # an object store gives back its lease on the asyncio loop
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(store.close)


async def announce_started(link: NatsLink, connects: trio.MemoryReceiveChannel[int],
                           cell: StateCell, router_id: str) -> None:
    """Say on NATS that sie-config serves, on each connect from the moment HTTP is up (a
    connect before that is announced then). Mirrors read `/v1/configs/epoch` when they hear
    it: a write this process's predecessor stored but never published is caught up at once
    (`started_announcement` says why). Best effort: a mirror's routine poll is the backstop."""
    announced = 0
    while True:
        count = await connects.receive()
        while True:  # several connects queued: one announcement says it all
            try:
                count = connects.receive_nowait()
            except trio.WouldBlock:
                break
        if count <= announced:
            continue
        announced = count
        state = cell.current
        report = await link.publish_confirmed(
            [(STARTED_SUBJECT, started_announcement(router_id, state.epoch, state.generation))])
        if not report.all_confirmed:
            log.info("the started announcement was not confirmed; mirrors will poll")


def recent_writes(settings: ConfigSettings, store: ConfigStore | None,
                  count: int) -> list[tuple[str, float]] | None:
    """The models written last, for `boot_log.seed`; None without a restored store or when
    the store cannot list them (the log then starts empty: mirrors take snapshots)."""
    if store is None or not settings.restore:
        return None
    try:
        return store.recent_models(count)
    except StoreUnavailable as exc:
        log.warning("could not list the models written last (%s); the delta log starts empty",
                    exc)
        return None


async def prune_idempotency_forever(store: ConfigStore, ttl: float) -> None:
    """Expired Idempotency-Key records are removed hourly so the store does not grow forever."""
    while True:
        try:
            removed = await trio.to_thread.run_sync(store.prune_idempotency, ttl)
            if removed:
                log.info("pruned %d expired idempotency records", removed)
        except Exception as exc:
            log.warning("idempotency pruning failed: %s", exc)
        await trio.sleep(3600)

"""sie-worker assembled: the seed registry, the actor tree, and hypercorn, in one nursery.

Supervision tree:

    sie-worker (Supervisor)
      nats           NatsLink.run          (only with SIE_NATS_URL)
      bundle-config  BundleConfigActor     (owns registry, epoch, readiness; fetches snapshots)
      deltas         DeltaPump             (only with SIE_NATS_URL)
      epoch-poller   EpochPoller           (only with SIE_CONFIG_SERVICE_URL)
      announcer      Announcer             (only with SIE_NATS_URL)

HTTP (``/healthz``, ``/readyz``, ``/metrics``, ``/v1/worker/status``, ``/ws/status``) runs
beside the tree on the same host:port and only reads the published WorkerView.

Graceful stop: ``shutdown`` set → the actor publishes a not-ready view → every status stream
pushes its ``ready: false`` frame and closes → hypercorn stops → the tree is cancelled.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from urllib.parse import urlsplit

import httpx
import trio

from sie_actors.http.app import create_app, serve_app
from sie_actors.http.auth import auth_headers
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.runtime import ActorError, ChildSpec, Mailbox, Supervisor, actor_child

from sie_worker.catalog import WorkerCatalog, load_catalog
from sie_worker.config_actor import BundleConfigActor, ShutDown
from sie_worker.feeds import AdvertisedUrl, Announcer, DeltaPump, EpochPoller
from sie_worker.metrics import WorkerMetrics
from sie_worker.routes import StreamTracker, mount
from sie_worker.settings import WorkerSettings, advertise_url
from sie_worker.source import ConfigSource
from sie_worker.view import Identity, ViewCell, WorkerView

log = logging.getLogger("sie_worker")

STREAM_DRAIN_S = 1.5


def initial_view(settings: WorkerSettings, catalog: WorkerCatalog) -> WorkerView:
    identity = Identity(name=settings.name, bundle=settings.bundle, pool=settings.pool)
    # Without sie-config to ask, the seed is all there is: ready at once (CONTRACT §2 item 11).
    return WorkerView(identity=identity, registry=catalog.registry,
                      ready=settings.config_url is None,
                      syncing=settings.config_url is not None)


async def run_service(settings: WorkerSettings, shutdown: trio.Event, *,
                      catalog: WorkerCatalog | None = None,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    if catalog is None:
        catalog = await trio.to_thread.run_sync(load_catalog, settings.bundles_dir,
                                                settings.models_dir, settings.bundle)
    metrics = WorkerMetrics()
    cell = ViewCell(initial_view(settings, catalog))
    metrics.on_view(cell.current)
    tracker = StreamTracker()
    advertised = AdvertisedUrl()

    async with contextlib.AsyncExitStack() as stack:
        source = None
        if settings.config_url:
            client = await stack.enter_async_context(httpx.AsyncClient(
                headers=auth_headers(settings.token),
                timeout=httpx.Timeout(settings.http_timeout_s, connect=min(
                    2.0, settings.http_timeout_s))))
            source = ConfigSource(client, settings.config_url, settings.bundle)

        children: list[ChildSpec] = []
        link = None
        if settings.nats_url:
            link = NatsLink(NatsSettings(url=settings.nats_url, name=f"sie-worker-{settings.name}",
                                         ping_interval=settings.nats_ping_interval),
                            on_state_change=lambda up: metrics.nats_connected.set(1 if up else 0))
            children.append(ChildSpec("nats", link.run))
        config_box = Mailbox(name="bundle-config")
        children.append(actor_child("bundle-config", config_box, lambda box: BundleConfigActor(
            cell, local_bundles=catalog.bundles, source=source, metrics=metrics,
            backoff_initial=settings.bootstrap_backoff_initial_s,
            backoff_max=settings.bootstrap_backoff_max_s, mailbox=box)))
        if link is not None:
            pump = DeltaPump(link, settings.bundle, config_box.ref, settings.trusted_producers,
                             metrics)
            children.append(ChildSpec("deltas", pump.run))
        if source is not None:
            poller = EpochPoller(source, config_box.ref, settings.poll_s,
                                 link.reconnect_events() if link is not None else None, metrics)
            children.append(ChildSpec("epoch-poller", poller.run))
        if link is not None:
            announcer = Announcer(link, advertised, settings.name, settings.bundle,
                                  settings.announce_s, link.reconnect_events(), metrics)
            children.append(ChildSpec("announcer", announcer.run))
        supervisor = Supervisor(
            "sie-worker", children, max_restarts=20, window=60.0,
            on_restart=lambda child, exc: metrics.actor_restarts.labels(child).inc())

        app = create_app("sie_worker", metrics)
        mount(app, cell, metrics, tracker, heartbeat_s=settings.heartbeat_s)

        http_stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            nursery.start_soon(stop_gracefully, shutdown, http_stop, config_box, cell, tracker)
            async with trio.open_nursery() as http:
                urls = await http.start(partial(serve_app, app, settings.host, settings.port,
                                                http_stop))
                port = urlsplit(urls[0]).port or settings.port
                advertised.set(advertise_url(settings.advertise_url, settings.host, port))
                log.info("sie-worker %s (bundle %s) serving on %s; advertised as %s",
                         settings.name, settings.bundle, ", ".join(urls), advertised.value)
                task_status.started(urls)
            # hypercorn returned: the status streams said goodbye, requests are done.
            nursery.cancel_scope.cancel()


async def stop_gracefully(shutdown: trio.Event, http_stop: trio.Event, config_box: Mailbox,
                          cell: ViewCell, tracker: StreamTracker) -> None:
    await shutdown.wait()
    log.info("shutting down: reporting not ready")
    try:
        await config_box.ref.ask(ShutDown(), timeout=2.0)
    except ActorError as exc:
        # The owner cannot answer (restarting or stuck): say not-ready on its behalf, since a
        # stopping worker must never look eligible.
        log.warning("config actor did not take the shutdown (%r); publishing it directly", exc)
        cell.publish(cell.current.evolve(ready=False, closing=True))
    with trio.move_on_after(STREAM_DRAIN_S):
        await tracker.wait_idle()
    http_stop.set()

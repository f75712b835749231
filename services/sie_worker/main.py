"""sie-worker assembled: the seed registry, the actor tree, and hypercorn, in one nursery.

Supervision tree:

    sie-worker (Supervisor)
      nats           NatsLink.run          (only with SIE_NATS_URL)
      bundle-config  MirrorActor           (owns registry, epoch, readiness; fetches snapshots)
      deltas         delta_feed            (only with SIE_NATS_URL)
      epoch-poller   EpochPollerActor      (only with SIE_CONFIG_SERVICE_URL)
      config-started started_feed          sie-config's start -> a poll now (with both)
      announcer      Announcer             (only with SIE_NATS_URL)
      inference      run_inference         model hosts + JetStream pull consumer of SIE_POOL
                                           (only with SIE_NATS_URL)

The mirror and the poller are the shared ones of ``sie_actors.actors.mirror`` (a gateway runs
the same), scoped here to this worker's bundle and its bundle export.

HTTP (``/healthz``, ``/readyz``, ``/metrics``, ``/v1/worker/status``, ``/ws/status``) runs
beside the tree on the same host:port and only reads the published WorkerView.

Graceful stop: ``shutdown`` set → a not-ready view is published → every status stream
pushes its ``ready: false`` frame and closes → hypercorn stops → the tree is cancelled.
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from urllib.parse import urlsplit

import trio

from sie_actors.actors.config_client import ConfigClient
from sie_actors.actors.mirror import EpochPollerActor, delta_feed, started_feed
from sie_actors.domain.delta import bundle_subject
from sie_actors.domain.mirror_protocol import Pacing
from sie_actors.http.app import create_app, serve_app
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.runtime import ChildSpec, Mailbox, Supervisor, actor_child

from sie_worker.catalog import WorkerCatalog, load_catalog
from sie_worker.inference.consumer import ConsumerSettings
from sie_worker.inference.service import run_inference
from sie_worker.feeds import AdvertisedUrl, Announcer
from sie_worker.metrics import WorkerMetrics
from sie_worker.mirror import WorkerMirrorMetrics, WorkerViews, bundle_mirror, bundle_source
from sie_worker.routes import StreamTracker, mount
from sie_worker.settings import WorkerSettings, advertise_url
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
        client = None
        if settings.config_url:
            client = await stack.enter_async_context(ConfigClient(
                settings.config_url, settings.token, settings.http_timeout_s))
        views = WorkerViews(cell, metrics, has_source=client is not None)

        children: list[ChildSpec] = []
        link = None
        if settings.nats_url:
            link = NatsLink(NatsSettings(url=settings.nats_url, name=f"sie-worker-{settings.name}",
                                         ping_interval=settings.nats_ping_interval),
                            on_state_change=lambda up: metrics.nats_connected.set(1 if up else 0))
            children.append(ChildSpec("nats", link.run))
        config_box = Mailbox(name="bundle-config")
        poller_box = Mailbox(name="epoch-poller") if client is not None else None
        reconnects = link.reconnect_events() if link is not None and client is not None else None
        children.append(actor_child("bundle-config", config_box, lambda box: bundle_mirror(
            views, bundle=settings.bundle,
            source=bundle_source(client, settings.bundle, catalog.bundles),
            trusted=settings.trusted_producers, metrics=metrics,
            pacing=Pacing(settings.bootstrap_backoff_initial_s, settings.bootstrap_backoff_max_s),
            poller=poller_box.ref if poller_box is not None else None, reconnects=reconnects,
            mailbox=box)))
        if link is not None:
            children.append(ChildSpec("deltas", delta_feed(link, bundle_subject(settings.bundle),
                                                           config_box.ref)))
        if client is not None:
            children.append(actor_child("epoch-poller", poller_box, lambda box: EpochPollerActor(
                config_box.ref, client, position=views.position, interval=settings.poll_s,
                metrics=WorkerMirrorMetrics(metrics), mailbox=box)))
            if link is not None:
                children.append(ChildSpec("config-started", started_feed(
                    link, poller_box.ref, settings.trusted_producers)))
        if link is not None:
            announcer = Announcer(link, advertised, settings.name, settings.bundle,
                                  settings.announce_s, link.reconnect_events(), metrics)
            children.append(ChildSpec("announcer", announcer.run))
            consumer_settings = ConsumerSettings(
                pool=settings.pool or settings.bundle, bundle=settings.bundle,
                worker_id=settings.name, ack_wait_s=settings.ack_wait_s,
                progress_s=settings.ack_wait_s / 5, fast_lane=settings.fast_lane)
            children.append(ChildSpec("inference", partial(
                run_inference, link, cell, consumer_settings, metrics,
                preload_models=settings.preload, graph_cache=settings.graph_cache)))
        supervisor = Supervisor(
            "sie-worker", children, max_restarts=settings.supervisor_max_restarts,
            window=settings.supervisor_window, on_restart=metrics.count_restart)

        app = create_app("sie_worker", metrics)
        mount(app, cell, metrics, tracker, heartbeat_s=settings.heartbeat_s)

        http_stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            nursery.start_soon(stop_gracefully, shutdown, http_stop, views, tracker)
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


async def stop_gracefully(shutdown: trio.Event, http_stop: trio.Event, views: WorkerViews,
                          tracker: StreamTracker) -> None:
    await shutdown.wait()
    log.info("shutting down: reporting not ready")
    views.close()  # a stopping worker must never look eligible, whatever the mirror does next
    with trio.move_on_after(STREAM_DRAIN_S):
        await tracker.wait_idle()
    http_stop.set()

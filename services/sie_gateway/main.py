"""sie-gateway assembled.

Supervision tree:

    sie-gateway (Supervisor)
      nats        NatsLink.run                  (with SIE_NATS_URL)
      mirror      RegistryMirrorActor           owns the registry mirror
      deltas      delta_feed: _all -> mirror    (with SIE_NATS_URL)
      poller      EpochPollerActor              (with SIE_CONFIG_SERVICE_URL)
      config-started  started_feed: sie-config's start -> a poll now (with both)
      workers     WorkerDirectoryActor          starts and retires worker sessions
        worker-session <url> (Supervisor)       one per worker
          session WorkerSessionActor            its /ws/status stream
      announces   subject_pump: announcements -> workers (with SIE_NATS_URL)
      inbox       subject_pump: _INBOX.{router_id}.> -> pending encodes (with SIE_NATS_URL)

The mirror and the poller are the shared ones of `sie_actors.actors.mirror` (a worker runs the
same, scoped to its bundle); the gateway's are scoped to every bundle and the full export.
The HTTP server runs beside the tree and reads the mirror cell and worker views; with
SIE_GATEWAY_INFERENCE_PORT, a second, lean listener serves the encode route alone
(`inference_port.py`).
"""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import trio

from sie_actors.domain.delta import ALL_SUBJECT
from sie_actors.domain.errors import DomainError
from sie_actors.domain.registry import Registry
from sie_actors.domain.sync import MirrorPosition
from sie_actors.domain.worker_status import ANNOUNCE_SUBJECT, WorkerAnnouncement
from sie_actors.actors.config_client import ConfigClient
from sie_actors.actors.mirror import EpochPollerActor, delta_feed, started_feed, subject_pump
from sie_actors.http.app import create_app, serve_app
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.runtime import ActorRef, Mailbox, Supervisor, actor_child
from sie_actors.runtime.supervisor import ChildSpec
from sie_actors.seed import load_seed

from sie_actors.inference import encode_api
from sie_actors.nats.jetstream import WorkQueue

from sie_gateway.encode import ENCODE_PREFIX, EncodeRoute, mount_encode
from sie_gateway.fleet_feed import FleetWiring
from sie_gateway import inference_port
from sie_gateway.inbox import Inbox
from sie_gateway.metrics import GatewayMetrics
from sie_gateway.mirror import (GatewayMirrorMetrics, MirrorCell, MirrorState,
                                RegistryMirrorActor)
from sie_gateway.readiness import healthy_views, split_workers
from sie_gateway.routes import mount
from sie_gateway.settings import GatewaySettings
from sie_gateway.ui import mount_ui
from sie_gateway.workers import Announced, WorkerDirectory, WorkerDirectoryActor

log = logging.getLogger("sie_gateway")


def seed_state(settings: GatewaySettings) -> MirrorState:
    if settings.has_seed:
        registry = load_seed(settings.bundles_dir, settings.models_dir).registry()
    else:
        registry = Registry.empty()
    return MirrorState(registry, MirrorPosition(0, ""), bootstrapped=False)


def announcements_to(workers: ActorRef):
    async def forward(raw: bytes) -> None:
        try:
            announcement = WorkerAnnouncement.from_json(raw)
        except DomainError as exc:
            log.warning("ignoring a bad worker announcement: %s", exc.message)
            return
        await workers.tell(Announced(announcement))
    return forward


async def forget_streams_on_reconnect(link: NatsLink, queue: WorkQueue, *,
                                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A reconnect may reach a restarted server, which has lost the memory work streams."""
    events = link.reconnect_events()
    task_status.started()
    async for _ in events:
        queue.forget_streams()


async def run_service(settings: GatewaySettings, shutdown: trio.Event, *,
                      task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    metrics = GatewayMetrics()
    cell = MirrorCell(await trio.to_thread.run_sync(seed_state, settings))
    metrics.on_state(cell.current)
    directory = WorkerDirectory()

    def refresh_worker_gauges() -> None:
        now = trio.current_time()
        views = list(directory.views())
        healthy = healthy_views(views, now, settings.heartbeat_timeout)
        metrics.workers.labels("healthy").set(len(healthy))
        metrics.workers.labels("unhealthy").set(len(views) - len(healthy))
        registry = cell.current.registry
        for bundle in registry.list_bundles():
            acked, pending = split_workers(bundle.name, registry.bundle_config_hash(bundle.name),
                                           healthy)
            metrics.bundle_acked.labels(bundle.name).set(len(acked))
            metrics.bundle_pending.labels(bundle.name).set(len(pending))

    metrics.refreshers.append(refresh_worker_gauges)

    fleet = FleetWiring(settings, cell, directory, metrics, nats_configured=bool(settings.nats_url))
    async with contextlib.AsyncExitStack() as stack:
        await _run_tree(settings, shutdown, metrics, cell, directory, fleet, stack, task_status)


async def _run_tree(settings: GatewaySettings, shutdown: trio.Event, metrics: GatewayMetrics,
                    cell: MirrorCell, directory: WorkerDirectory, fleet: FleetWiring,
                    stack: contextlib.AsyncExitStack, task_status) -> None:
    children: list[ChildSpec] = []
    link = None
    if settings.nats_url:
        link = NatsLink(NatsSettings(url=settings.nats_url, name=settings.name,
                                     ping_interval=settings.nats_ping_interval),
                        on_state_change=lambda up: metrics.nats_connected.set(1 if up else 0))
        children.append(ChildSpec("nats", link.run))

    client = None
    if settings.config_url:
        client = await stack.enter_async_context(ConfigClient(
            settings.config_url, settings.outbound_token, settings.bootstrap_timeout))
    mirror_box = Mailbox(name="mirror")
    poller_box = Mailbox(name="poller") if client is not None else None
    reconnects = link.reconnect_events() if link is not None and client is not None else None
    children.append(actor_child("mirror", mirror_box, lambda box: RegistryMirrorActor(
        cell, client=client, trusted=settings.trusted_producers, metrics=metrics,
        poller=poller_box.ref if poller_box is not None else None, reconnects=reconnects,
        mailbox=box)))
    if link is not None:
        children.append(ChildSpec("deltas", delta_feed(link, ALL_SUBJECT, mirror_box.ref)))
    if client is not None:
        children.append(actor_child("poller", poller_box, lambda box: EpochPollerActor(
            fleet.tap(mirror_box.ref), client, position=lambda: cell.current.position,
            interval=settings.poll_interval, metrics=GatewayMirrorMetrics(metrics),
            mailbox=box)))
        if link is not None:
            children.append(ChildSpec("config-started", started_feed(
                link, poller_box.ref, settings.trusted_producers)))
    workers_box = Mailbox(name="workers")
    children.append(actor_child("workers", workers_box, lambda box: WorkerDirectoryActor(
        directory, static_urls=settings.workers, heartbeat_timeout=settings.heartbeat_timeout,
        grace=settings.announce_grace, mailbox=box)))
    if link is not None:
        children.append(ChildSpec("announces", subject_pump(
            link, ANNOUNCE_SUBJECT, announcements_to(workers_box.ref))))
    inbox = Inbox(on_drop=metrics.encode_late_results.inc)
    queue = WorkQueue(link) if link is not None else None
    if link is not None:
        children.append(ChildSpec("inbox", subject_pump(link, inbox.subject, inbox.deliver)))
        children.append(ChildSpec("queue-resets", partial(forget_streams_on_reconnect, link,
                                                          queue)))
    children += fleet.children
    supervisor = Supervisor("sie-gateway", children, max_restarts=settings.supervisor_max_restarts,
                            window=settings.supervisor_window, on_restart=metrics.count_restart)

    def ready() -> bool:
        # Ready once sie-config's snapshot is applied; on a filesystem seed alone, at once.
        return cell.current.bootstrapped or not settings.config_url

    app = create_app("sie_gateway", metrics,
                     body_limits={ENCODE_PREFIX: encode_api.MAX_BODY_BYTES})
    fast = mount(app, cell, directory, settings.tokens,
                 heartbeat_timeout=settings.heartbeat_timeout, ready=ready, metrics=metrics)
    encode = EncodeRoute(cell, settings.tokens, metrics, lambda: queue, inbox,
                         lambda: healthy_views(directory.views(), trio.current_time(),
                                               settings.heartbeat_timeout),
                         timeout=settings.request_timeout)
    mount_encode(app, encode, fast)
    mount_ui(app, fleet.feed, settings.tokens)

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        async with trio.open_nursery() as http:
            urls = await http.start(partial(serve_app, app, settings.host, settings.port,
                                            shutdown))
            if settings.inference_port is not None:
                inference_url = await http.start(partial(
                    inference_port.serve, encode.answer, metrics,
                    inference_port.Limits(max_body=encode_api.MAX_BODY_BYTES), settings.host,
                    settings.inference_port, shutdown))
                log.info("sie-gateway serving POST /v1/encode/... also on %s", inference_url)
            log.info("sie-gateway serving on %s (sie-config: %s, NATS: %s, %d static workers)",
                     ", ".join(urls), settings.config_url or "-", settings.nats_url or "-",
                     len(settings.workers))
            task_status.started(urls)
        nursery.cancel_scope.cancel()

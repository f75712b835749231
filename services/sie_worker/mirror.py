"""The worker's mirror: the shared MirrorActor, scoped to this worker's bundle and its export.

The rules are `sie_actors.domain.mirror_protocol`'s, the same as a gateway's. What is the
worker's own here is how a mirror view becomes a :class:`~sie_worker.view.WorkerView` (readiness,
and `closing` once a graceful stop began, which no later mirror change may undo) and the names
of its metrics. Without ``SIE_CONFIG_SERVICE_URL`` there is nobody to resync from: the worker is
ready on its seed at once and applies deltas in order as they come.
"""

from __future__ import annotations

from typing import Sequence

from sie_actors.actors.catchup_source import CatchUpSource
from sie_actors.actors.config_client import BundleExportSource, ConfigClient, SnapshotSource
from sie_actors.actors.mirror import MirrorActor
from sie_actors.domain.bundle import Bundle
from sie_actors.domain.mirror_protocol import Count, Metric, MirrorScope, MirrorView, Pacing
from sie_actors.domain.sync import MirrorPosition

from sie_worker.metrics import WorkerMetrics
from sie_worker.view import ViewCell


class WorkerMirrorMetrics:
    """The protocol's counts under the worker's metric names."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def count(self, action: Count) -> None:
        m = self.metrics
        if action.metric is Metric.DELTA:
            m.deltas.labels(action.labels[0]).inc()
        elif action.metric is Metric.RESYNC:
            m.resyncs.labels(*action.labels).inc()
        elif action.metric is Metric.FETCH_FAILURE:
            m.bootstrap_failures.labels(*action.labels).inc()
        elif action.metric is Metric.SNAPSHOT_INSTALLED:
            m.bootstraps.inc()
            m.snapshots.labels(*action.labels).inc()
        elif action.metric is Metric.SNAPSHOT_HASH_MISMATCH:
            m.snapshot_hash_mismatches.inc()

    def poll(self, trigger: str, result: str) -> None:
        self.metrics.epoch_polls.labels(trigger, result).inc()


class WorkerViews:
    """Turns mirror views into WorkerViews; owns the `closing` flag of a graceful stop."""

    def __init__(self, cell: ViewCell, metrics: WorkerMetrics, has_source: bool) -> None:
        self.cell = cell
        self.metrics = metrics
        self.has_source = has_source

    def resume(self) -> MirrorView:
        view = self.cell.current
        return MirrorView(view.registry, MirrorPosition(view.epoch, view.generation),
                          view.bootstrapped, view.syncing)

    def position(self) -> MirrorPosition:
        view = self.cell.current
        return MirrorPosition(view.epoch, view.generation)

    def publish(self, mirror: MirrorView) -> None:
        closing = self.cell.current.closing
        view = self.cell.current.evolve(
            registry=mirror.registry, epoch=mirror.position.epoch,
            generation=mirror.position.generation, bootstrapped=mirror.bootstrapped,
            syncing=mirror.syncing,
            ready=(mirror.bootstrapped or not self.has_source) and not closing)
        self.cell.publish(view)
        self.metrics.on_view(view)

    def close(self) -> None:
        """Report not-ready from now on (graceful stop)."""
        view = self.cell.current.evolve(ready=False, closing=True)
        self.cell.publish(view)
        self.metrics.on_view(view)


def bundle_source(client: ConfigClient | None, bundle: str,
                  local_bundles: Sequence[Bundle]) -> SnapshotSource | None:
    if client is None:
        return None
    return CatchUpSource(client, BundleExportSource(client, bundle, local_bundles), bundle)


def bundle_mirror(views: WorkerViews, *, bundle: str, source: SnapshotSource | None,
                  trusted: tuple[str, ...], metrics: WorkerMetrics, pacing: Pacing,
                  poller=None, reconnects=None, mailbox=None) -> MirrorActor:
    return MirrorActor(scope=MirrorScope(bundle, trusted, can_resync=source is not None),
                       resume=views.resume, publish=views.publish,
                       metrics=WorkerMirrorMetrics(metrics), source=source, pacing=pacing,
                       poller=poller, reconnects=reconnects, mailbox=mailbox,
                       name="bundle-config")

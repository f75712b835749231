"""The gateway's mirror: the shared MirrorActor, scoped to every bundle; it catches up from
sie-config's recent deltas when it can, else takes the full export.

`RegistryMirrorActor` (the name of the design) is the only writer of `MirrorCell.current`; the
rules it follows are `sie_actors.domain.mirror_protocol`'s, the same as a worker's. What is the
gateway's own here is how a view is shown (`MirrorState`, with the cached `/v1/configs/models`
body) and how the protocol's counts map to the gateway's metric names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import orjson

from sie_actors.actors.catchup_source import CatchUpSource
from sie_actors.actors.config_client import ConfigClient, FullExportSource
from sie_actors.actors.mirror import MirrorActor
from sie_actors.domain.mirror_protocol import Count, Metric, MirrorScope, MirrorView, Pacing
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import SOURCE_GATEWAY, model_summary
from sie_actors.domain.sync import MirrorPosition


@dataclass(frozen=True, eq=False)
class MirrorState:
    registry: Registry
    position: MirrorPosition
    bootstrapped: bool  # a snapshot from sie-config was applied at least once

    @cached_property
    def models_body(self) -> bytes:
        return orjson.dumps({"models": [model_summary(e, SOURCE_GATEWAY)
                                        for e in self.registry.list_models()]})


class MirrorCell:
    def __init__(self, state: MirrorState) -> None:
        self.current = state


class GatewayMirrorMetrics:
    """The protocol's counts under the gateway's metric names."""

    def __init__(self, metrics) -> None:
        self.metrics = metrics

    def count(self, action: Count) -> None:
        m = self.metrics
        if action.metric is Metric.DELTA:
            result, kind = action.labels
            m.deltas.labels(kind, result).inc()
        elif action.metric is Metric.RESYNC:
            m.resyncs.labels(*action.labels).inc()
        elif action.metric is Metric.FETCH_FAILURE:
            m.bootstrap_failures.inc()
        elif action.metric is Metric.SNAPSHOT_INSTALLED:
            m.snapshots.labels(*action.labels).inc()
        # (the full export carries no hash to check a snapshot against: no mismatch to count)

    def poll(self, trigger: str, result: str) -> None:
        if result != "ok":
            self.metrics.poll_failures.inc()


class RegistryMirrorActor(MirrorActor):
    def __init__(self, cell: MirrorCell, *, client: ConfigClient | None,
                 trusted: tuple[str, ...], metrics, pacing: Pacing | None = None,
                 poller=None, reconnects=None, mailbox=None) -> None:
        def resume() -> MirrorView:
            state = cell.current
            return MirrorView(state.registry, state.position, state.bootstrapped, False)

        def publish(view: MirrorView) -> None:
            state = cell.current
            if (view.registry is not state.registry or view.position != state.position
                    or view.bootstrapped != state.bootstrapped):
                cell.current = MirrorState(view.registry, view.position, view.bootstrapped)
                metrics.on_state(cell.current)

        super().__init__(scope=MirrorScope(None, trusted, can_resync=client is not None),
                         resume=resume, publish=publish, metrics=GatewayMirrorMetrics(metrics),
                         source=(CatchUpSource(client, FullExportSource(client), None)
                                 if client is not None else None),
                         pacing=pacing, poller=poller, reconnects=reconnects, mailbox=mailbox,
                         name="mirror")

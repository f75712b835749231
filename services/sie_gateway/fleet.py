"""The fleet snapshot: everything the fleet page shows, computed once on the gateway.

A pure function over facts the gateway already holds: the mirror's state (`MirrorCell.current`),
the worker directory's views, and what the gateway observed about its links (`LinkFacts`: NATS,
sie-config's last polled epoch, the last resync, the peer gateways). The page only lays the
result out; every rule (which worker is eligible, what "acked" means) stays the one in
`readiness.py`, so the page and `GET /v1/configs/models/{id}/status` can never disagree.

Shape, chosen so that one snapshot stays small on a big fleet:
- readiness is per *bundle* (a worker acks a bundle's hash, not a model), so acked/pending lists
  are sent once per bundle and each model only names its bundles; the page derives every cell;
- ages are sent as seconds at `server_time`, and the page advances them itself, so a heartbeat
  that changes nothing but a timestamp is not a change worth a new snapshot (`signature`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

from sie_gateway.readiness import bundle_readiness

if TYPE_CHECKING:  # read through their public attributes only
    from sie_gateway.mirror import MirrorState
    from sie_gateway.workers import WorkerView

# what a worker row says; "silent" covers both a closed session and no frame within the timeout
READY, NOT_READY, SILENT, CONNECTING = "ready", "not_ready", "silent", "connecting"


@dataclass(frozen=True)
class PeerReport:
    """Another gateway's `/v1/configs/sync`, as last fetched by this one."""

    url: str
    epoch: int | None = None
    generation: str = ""
    bootstrapped: bool | None = None
    error: str = ""
    at: float | None = None  # trio clock of the last answer (or failure)


@dataclass(frozen=True)
class LinkFacts:
    """What this gateway knows about the world around its mirror."""

    name: str = "sie-gateway"
    config_url: str | None = None
    nats_configured: bool = False
    nats_connected: bool = False
    source_epoch: int | None = None  # sie-config's epoch at the last successful poll
    source_generation: str = ""
    source_at: float | None = None
    resyncs: int = 0
    last_resync_cause: str = ""
    last_resync_at: float | None = None
    peers: tuple[PeerReport, ...] = ()


@dataclass
class Arrivals:
    """The order in which this gateway first saw each model, for "newest first".

    The registry keeps no creation time; models present at the first snapshot share rank 0, and
    every model that arrives later (a delta, a resync) gets the next rank.
    """

    ranks: dict[str, int] = field(default_factory=dict)
    counter: int = 0
    _seen_state: object = None

    def observe(self, state: MirrorState) -> None:
        if state is self._seen_state:
            return
        first = self._seen_state is None
        self._seen_state = state
        for entry in state.registry.list_models():
            if entry.model_id not in self.ranks:
                if not first:
                    self.counter += 1
                self.ranks[entry.model_id] = 0 if first else self.counter


def worker_state(view: WorkerView, now: float, timeout: float) -> str:
    if view.status is None:
        return CONNECTING if view.connected or view.received_at == 0.0 else SILENT
    if view.healthy(now, timeout):
        return READY
    if not view.connected or now - view.received_at > timeout:
        return SILENT
    return NOT_READY


def signature(state: MirrorState, views: Iterable[WorkerView], now: float, timeout: float,
              facts: LinkFacts) -> tuple:
    """Equal for two moments the page would draw the same (ages aside): the cheap test that
    decides whether a new snapshot is owed."""
    workers = tuple((v.url, v.connected, v.status, worker_state(v, now, timeout)) for v in views)
    peers = tuple((p.url, p.epoch, p.generation, p.bootstrapped, p.error) for p in facts.peers)
    return (id(state), workers, facts.nats_connected, facts.source_epoch,
            facts.source_generation, facts.resyncs, facts.last_resync_cause, peers)


def _age(now: float, at: float | None) -> float | None:
    return None if at is None else round(max(0.0, now - at), 3)


def fleet_snapshot(state: MirrorState, views: Iterable[WorkerView], now: float, timeout: float,
                   facts: LinkFacts, arrivals: Mapping[str, int] | None = None) -> dict:
    views = list(views)
    registry = state.registry
    healthy = [v for v in views if v.healthy(now, timeout)]
    bundles = []
    for bundle in registry.list_bundles():
        expected = registry.bundle_config_hash(bundle.name)
        readiness = bundle_readiness(bundle.name, expected, healthy)
        loaded: Counter[str] = Counter()
        for view in healthy:
            if view.status.bundle == bundle.name:
                loaded.update(set(view.status.loaded_models))
        # counts only: the names are in `workers` already (and in a model's detail)
        bundles.append({"bundle_id": bundle.name, "expected_bundle_config_hash": expected,
                        "total_eligible_workers": readiness["total_eligible_workers"],
                        "acked_count": len(readiness["acked_workers"]),
                        "pending_count": len(readiness["pending_workers"]),
                        "acked": readiness["acked"], "loaded": dict(loaded)})
    arrivals = arrivals or {}
    models = [{"model_id": e.model_id, "bundles": list(e.bundles),
               "rank": arrivals.get(e.model_id, 0)} for e in registry.list_models()]
    workers = []
    for view in views:
        status = view.status
        workers.append({
            "name": view.name,
            "url": view.url,
            "state": worker_state(view, now, timeout),
            "connected": view.connected,
            "ready": bool(status and status.ready),
            "bundle": status.bundle if status else "",
            "pool": status.pool_name if status else "",
            "bundle_config_hash": status.bundle_config_hash if status else "",
            # readiness.split_workers' rule: the reported hash is the one this gateway expects
            "acked": bool(status and registry.get_bundle(status.bundle) is not None
                          and status.bundle_config_hash == registry.bundle_config_hash(
                              status.bundle)),
            "loaded_models": list(status.loaded_models) if status else [],
            "last_frame_age_s": _age(now, view.received_at) if status else None,
        })
    workers.sort(key=lambda w: (w["state"] == READY, w["name"]))
    in_sync = None
    if facts.source_epoch is not None:
        in_sync = (facts.source_epoch == state.position.epoch
                   and (not facts.source_generation
                        or facts.source_generation == state.position.generation))
    return {
        "type": "snapshot",
        "heartbeat_timeout_s": timeout,
        "gateway": {
            "name": facts.name,
            "epoch": state.position.epoch,
            "generation": state.position.generation,
            "bootstrapped": state.bootstrapped,
            "models": len(registry),
            "workers": len(views),
            "healthy_workers": len(healthy),
        },
        "config": {
            "url": facts.config_url,
            "epoch": facts.source_epoch,
            "generation": facts.source_generation,
            "polled_age_s": _age(now, facts.source_at),
            "in_sync": in_sync,
        },
        "nats": {"configured": facts.nats_configured, "connected": facts.nats_connected},
        "resync": {"count": facts.resyncs, "last_cause": facts.last_resync_cause,
                   "age_s": _age(now, facts.last_resync_at)},
        "peers": [{"url": p.url, "epoch": p.epoch, "generation": p.generation,
                   "bootstrapped": p.bootstrapped, "error": p.error,
                   "age_s": _age(now, p.at)} for p in facts.peers],
        "bundles": bundles,
        "models": models,
        "workers": workers,
    }


def model_detail(state: MirrorState, model_id: str, views: Iterable[WorkerView], now: float,
                 timeout: float) -> dict | None:
    """One model for the page's detail panel: profiles, its YAML as the mirror holds it, and
    per bundle the expected hash with the workers that acked it (None for an unknown model)."""
    entry = state.registry.get_model(model_id)
    if entry is None:
        return None
    healthy = [v for v in views if v.healthy(now, timeout)]
    return {
        "model_id": entry.model_id,
        "profiles": [{"name": name, "adapter_path": entry.profiles[name].get("adapter_path"),
                      "extends": entry.profiles[name].get("extends")}
                     for name in entry.profile_names()],
        "yaml": entry.raw_yaml,
        "bundles": [bundle_readiness(b, state.registry.bundle_config_hash(b), healthy)
                    for b in entry.bundles],
    }

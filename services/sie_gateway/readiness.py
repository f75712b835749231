"""Per-replica readiness of a model (`GET /v1/configs/models/{id}/status`), as a pure function.

A worker is eligible for a bundle when it is healthy (connected, `ready: true`, a frame within the
heartbeat timeout) and reports exactly that bundle. It has acked when the hash it reports equals
the hash this gateway computes for the bundle. A bundle with no eligible worker is not acked: the
model is in the catalog but nothing can serve it yet.
"""

from __future__ import annotations

from typing import Iterable

from sie_actors.domain.registry import ModelEntry, Registry
from sie_actors.domain.snapshot import SOURCE_GATEWAY

from sie_gateway.workers import WorkerView


def split_workers(bundle_id: str, expected: str, healthy: list[WorkerView]
                  ) -> tuple[list[str], list[str]]:
    """(acked, pending) names among the bundle's healthy workers: acked when the hash it reports
    is the one this gateway expects. A bundle with no models expects ``""``, which is what its
    workers report, so they are acked and none is pending (nothing to catch up on)."""
    acked, pending = [], []
    for view in healthy:
        if view.status.bundle != bundle_id:
            continue
        if view.status.bundle_config_hash == expected:
            acked.append(view.name)
        else:
            pending.append(view.name)
    return acked, pending


def bundle_readiness(bundle_id: str, expected: str, healthy: list[WorkerView],
                     model_id: str | None = None) -> dict:
    acked, pending = split_workers(bundle_id, expected, healthy)
    # An addition to the original: which acked workers have the model loaded (can serve it now).
    loaded = sorted(v.name for v in healthy if v.status.bundle == bundle_id
                    and v.name in acked and model_id in v.status.loaded_models)
    return {
        "bundle_id": bundle_id,
        "expected_bundle_config_hash": expected,
        "total_eligible_workers": len(acked) + len(pending),
        "acked_workers": sorted(acked),
        "pending_workers": sorted(pending),
        "acked": bool(acked) and not pending,
        "loaded_workers": loaded,
    }


def healthy_views(views: Iterable[WorkerView], now: float, timeout: float) -> list[WorkerView]:
    return [view for view in views if view.healthy(now, timeout)]


def model_status(entry: ModelEntry, registry: Registry, epoch: int,
                 healthy: list[WorkerView]) -> dict:
    bundles = [bundle_readiness(b, registry.bundle_config_hash(b), healthy, entry.model_id)
               for b in entry.bundles]
    return {
        "model_id": entry.model_id,
        "config_epoch": epoch,
        "all_bundles_acked": bool(bundles) and all(b["acked"] for b in bundles),
        "no_bundles": not entry.bundles,
        "bundles": bundles,
        "source": SOURCE_GATEWAY,
    }

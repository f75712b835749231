"""Fleet-wide readiness from per-replica `/status` answers: pure data, no I/O.

Readiness is per gateway replica (each sees only its own workers), so the fleet is ready only when
every replica says `all_bundles_acked: true`. A replica that could not answer, or answered 404
because it has not mirrored the model yet, is simply not acked, with the reason kept for display.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sie_tools.admin.errors import format_error_body

UNREACHABLE = "unreachable"
NOT_FOUND = "not_found"


@dataclass(frozen=True)
class BundleView:
    bundle_id: str
    acked: bool
    acked_workers: list[str]
    pending_workers: list[str]
    total: int
    loaded_workers: list[str] = field(default_factory=list)  # ours: acked and model loaded

    @classmethod
    def from_json(cls, raw: Any) -> BundleView:
        raw = raw if isinstance(raw, dict) else {}
        acked = [str(w) for w in raw.get("acked_workers") or []]
        pending = [str(w) for w in raw.get("pending_workers") or []]
        total = raw.get("total_eligible_workers")
        return cls(bundle_id=str(raw.get("bundle_id", "?")), acked=raw.get("acked") is True,
                   acked_workers=acked, pending_workers=pending,
                   total=total if isinstance(total, int) else len(acked) + len(pending),
                   loaded_workers=[str(w) for w in raw.get("loaded_workers") or []])

    def pending_text(self) -> str:
        """Why this bundle is not acked, naming the workers an operator should look at."""
        if self.pending_workers:
            return (f"bundle {self.bundle_id}: pending workers {', '.join(self.pending_workers)} "
                    f"({len(self.acked_workers)}/{self.total} acked)")
        return f"bundle {self.bundle_id}: no eligible worker has acked ({self.total} eligible)"


@dataclass(frozen=True)
class ReplicaReport:
    """One replica's answer in one polling round: a status body or an error reason."""

    gateway: str
    status: dict[str, Any] | None = None
    error: str | None = None
    kind: str | None = None  # with `error`: UNREACHABLE, NOT_FOUND, or None (any other failure)

    @property
    def acked(self) -> bool:
        return (self.error is None and self.status is not None
                and self.status.get("all_bundles_acked") is True)

    @property
    def epoch(self) -> Any:
        return None if self.status is None else self.status.get("config_epoch")

    @property
    def no_bundles(self) -> bool:
        return self.status is not None and self.status.get("no_bundles") is True

    @property
    def loaded(self) -> bool:
        """Every bundle of the model has a worker with it loaded (`--wait --loaded`)."""
        bundles = self.bundles()
        return bool(bundles) and all(b.loaded_workers for b in bundles)

    def bundles(self) -> list[BundleView]:
        if self.status is None:
            return []
        return [BundleView.from_json(b) for b in self.status.get("bundles") or []]

    def reasons(self) -> list[str]:
        """Why this replica is not acked (empty when it is)."""
        if self.acked:
            return []
        if self.error is not None:
            return [self.error]
        if self.no_bundles:
            return ["model resolves to no bundle on this replica"]
        texts = [b.pending_text() for b in self.bundles() if not b.acked]
        return texts or ["all_bundles_acked is false"]

    def to_json(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "acked": self.acked, "status": self.status,
                "error": self.error}


def report_of(gateway: str, status_code: int, content: bytes, reason: str = "") -> ReplicaReport:
    """A replica's HTTP answer to `GET .../{model}/status` as a report.

    The one reading of that answer for every tool (the CLI, sie-chaos, sie-bench, the compose
    smoke test, the tests), whatever client fetched it: a non-2xx answer or a body that is not
    a JSON object is "not acked", with the reason.
    """
    if not 200 <= status_code < 300:
        text = format_error_body(status_code, content, reason)
        kind = NOT_FOUND if status_code == 404 else None
        return ReplicaReport(gateway, error=f"HTTP {status_code}: {text}", kind=kind)
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ReplicaReport(gateway, error="answer is not a JSON status object")
    return ReplicaReport(gateway, status=body)


def all_acked(reports: list[ReplicaReport]) -> bool:
    return bool(reports) and all(r.acked for r in reports)


def all_of_kind(reports: list[ReplicaReport], kind: str) -> bool:
    """Every replica failed the same way (all unreachable, all answered 404 for the model)."""
    return bool(reports) and all(r.kind == kind for r in reports)


def fleet_json(model_id: str, reports: list[ReplicaReport], *, timed_out: bool = False,
               elapsed: float | None = None) -> dict[str, Any]:
    """The `--json` document of `status`: every replica's raw answer plus the fleet verdict."""
    doc: dict[str, Any] = {"model_id": model_id, "all_replicas_acked": all_acked(reports),
                           "timed_out": timed_out,
                           "replicas": [r.to_json() for r in reports]}
    if elapsed is not None:
        doc["elapsed_s"] = round(elapsed, 3)
    return doc


def outcome_lines(model_id: str, reports: list[ReplicaReport], elapsed: float | None, *,
                  timed_out: bool) -> list[str]:
    """The final summary: success in one line; otherwise every pending replica/bundle/worker.

    ``elapsed`` is ``None`` for a single look (no --wait): "after 0.0s" would say nothing.
    """
    acked = sum(r.acked for r in reports)
    if all_acked(reports):
        epochs = sorted({str(r.epoch) for r in reports})
        after = "" if elapsed is None else f" after {elapsed:.1f}s"
        return [f"all {len(reports)} gateway replica(s) acked {model_id} "
                f"(epoch {', '.join(epochs)}){after}"]
    head = (f"timed out after {elapsed:.1f}s waiting for {model_id}" if timed_out
            else f"{model_id} is not ready")
    lines = [f"{head}: {len(reports) - acked} of {len(reports)} gateway replica(s) not acked"]
    for report in reports:
        if report.acked:
            continue
        where = report.gateway if report.epoch is None else f"{report.gateway} (epoch {report.epoch})"
        for reason in report.reasons():
            lines.append(f"  {where}: {reason}")
    return lines

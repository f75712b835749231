"""Live progress of `status --wait`, for a terminal or for a log.

On a TTY one line is rewritten in place as each polling round answers: every replica's state
(acked, pending with counts, silent when it did not answer) and the time elapsed, so an operator
sees that something is happening. Anywhere else (CI logs, pipes) rewriting would leave escape
codes, so one plain line is printed per replica whenever its state changes.
"""

from __future__ import annotations

import shutil
from typing import Callable, TextIO

from sie_tools.admin.readiness import NOT_FOUND, ReplicaReport

MAX_NAMES = 3
HEADERS = ("GATEWAY", "EPOCH", "BUNDLE", "STATE", "ACKED", "PENDING")


def compact(names: list[str], limit: int = MAX_NAMES) -> str:
    """`a, b, c +2` — enough names to act on without wrapping the table."""
    if not names:
        return "-"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} +{len(names) - limit}"


def _rows(report: ReplicaReport) -> list[tuple[str, ...]]:
    epoch = "-" if report.epoch is None else str(report.epoch)
    if report.error is not None:
        return [(report.gateway, epoch, "-", "ERROR", report.error, "")]
    if report.no_bundles:
        return [(report.gateway, epoch, "-", "NO BUNDLES", "-", "-")]
    rows = []
    for i, bundle in enumerate(report.bundles()):
        state = "acked" if bundle.acked else "pending"
        rows.append((report.gateway if i == 0 else "", epoch if i == 0 else "",
                     bundle.bundle_id, state,
                     f"{len(bundle.acked_workers)}/{bundle.total} {compact(bundle.acked_workers)}",
                     compact(bundle.pending_workers)))
    if not rows:
        rows.append((report.gateway, epoch, "-", "acked" if report.acked else "pending", "-", "-"))
    return rows


def table_lines(model_id: str, reports: list[ReplicaReport], elapsed: float,
                timeout: float | None = None) -> list[str]:
    """Header line plus an aligned table: replica → epoch → per-bundle acked/pending workers."""
    acked = sum(r.acked for r in reports)
    clock = f"{elapsed:.1f}s" if timeout is None else f"{elapsed:.1f}s / {timeout:g}s"
    head = f"{model_id}: {acked}/{len(reports)} gateway replica(s) acked  [{clock}]"
    rows = [HEADERS] + [row for report in reports for row in _rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    body = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in rows]
    return [head] + body


def replica_line(report: ReplicaReport) -> str:
    """One replica's state on one line; also the key that decides whether anything changed."""
    if report.error is not None:
        return f"{report.gateway}: not acked: {report.error}"
    epoch = f"epoch {report.epoch}"
    if report.no_bundles:
        return f"{report.gateway}: {epoch}: no bundles"
    parts = []
    for b in report.bundles():
        state = "acked" if b.acked else "pending"
        parts.append(f"{b.bundle_id} {state} {len(b.acked_workers)}/{b.total} "
                     f"acked [{', '.join(b.acked_workers)}] pending [{', '.join(b.pending_workers)}]")
    verdict = "ACKED" if report.acked else "not acked"
    return f"{report.gateway}: {epoch}: {verdict}" + (f": {'; '.join(parts)}" if parts else "")


def short_url(url: str) -> str:
    """`127.0.0.1:8081` for `http://127.0.0.1:8081`: the part that tells replicas apart."""
    return url.split("://", 1)[-1].rstrip("/")


def replica_state(report: ReplicaReport) -> str:
    """One word or two for the live line: acked, pending (with counts), missing, silent."""
    if report.acked:
        return "acked"
    if report.error is not None:
        return "not found" if report.kind == NOT_FOUND else "silent"
    if report.no_bundles:
        return "no bundles"
    bundles = report.bundles()
    acked = sum(len(b.acked_workers) for b in bundles)
    total = sum(b.total for b in bundles)
    return f"pending {acked}/{total}"


def live_line(model_id: str, reports: list[ReplicaReport], elapsed: float,
              timeout: float | None) -> str:
    """`[3.2s/60s] org/m: 1/2 acked: 127.0.0.1:8081 acked | 127.0.0.1:8082 pending 0/1`.

    Time and verdict first: on a narrow terminal the clip takes the per-replica tail.
    """
    acked = sum(r.acked for r in reports)
    states = " | ".join(f"{short_url(r.gateway)} {replica_state(r)}" for r in reports)
    clock = f"{elapsed:.1f}s" if timeout is None else f"{elapsed:.1f}s/{timeout:g}s"
    return f"[{clock}] {model_id}: {acked}/{len(reports)} acked: {states}"


class TtyProgress:
    """One live line, rewritten in place (carriage return + clear-to-end, no dependency) and
    clipped to the terminal width so it never wraps; `close` ends it before the summary."""

    def __init__(self, stream: TextIO, model_id: str, timeout: float | None,
                 width: Callable[[], int] = lambda: shutil.get_terminal_size().columns) -> None:
        self.stream, self.model_id, self.timeout, self.width = stream, model_id, timeout, width
        self.drawn = False

    def show(self, reports: list[ReplicaReport], elapsed: float) -> None:
        limit = max(self.width() - 1, 20)
        line = live_line(self.model_id, reports, elapsed, self.timeout)[:limit]
        self.stream.write(("\r\x1b[K" if self.drawn else "") + line)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


class LineProgress:
    """Prints `[elapsed] replica state` only when that replica's state changed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last: dict[str, str] = {}

    def show(self, reports: list[ReplicaReport], elapsed: float) -> None:
        for report in reports:
            line = replica_line(report)
            if self.last.get(report.gateway) != line:
                self.last[report.gateway] = line
                self.stream.write(f"[{elapsed:6.1f}s] {line}\n")
        self.stream.flush()

    def close(self) -> None:
        return None


class NoProgress:
    """`--json`: scripts want one document at the end, not a running commentary."""

    def show(self, reports: list[ReplicaReport], elapsed: float) -> None:
        return None

    def close(self) -> None:
        return None


def progress_for(stream: TextIO, model_id: str, timeout: float | None, *, json_mode: bool):
    if json_mode:
        return NoProgress()
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return TtyProgress(stream, model_id, timeout)
    return LineProgress(stream)

"""The history of a chaos run: every event, in order, with a timestamp, as JSON lines.

An event is a plain dict with a `type` and `t` (seconds since the start of the run, monotonic
clock) and the fields of its type. The types the harness writes:

    run         seed, duration, the cluster's processes, the fault schedule
    baseline    models: {model_id: [profiles]} before any write
    invoke      op, client, f ("add" | "append"), model, profile, key, bundle
    attempt     op, n, result (HTTP status or transport error) and the error code
    complete    op, outcome ("ok" | "failed" | "indeterminate"), status, attempts
    fault       fault, kind, target, duration          (the fault is injected)
    heal        fault, kind, target                    (the fault is healed)
    heal_failed fault, kind, target, error             (a healed process did not come back)
    converged   fault, kind, seconds | None            (time from heal to convergence)
    observe     node, epoch, generation                (only when a node's answer changed)
    final       the final observations (see sie_chaos.harness.final_observations)
    restarted   sie-config's models and epoch after one more SIGKILL and restart
    summary     the checker's counts, violations and table (written last)

The checker reads nothing but these dicts, so a saved history can be checked again later
(`sie-chaos --check FILE`) and read by a person.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator


class History:
    """An append-only list of events, optionally streamed to a JSON-lines file as they happen
    (so a run that dies still leaves what it saw)."""

    def __init__(self, sink: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.events: list[dict] = []
        self._sink = sink
        self._clock = clock
        self._start = clock()

    def now(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self._start

    def record(self, type_: str, **fields) -> dict:
        event = {"type": type_, "t": round(self.now(), 4), **fields}
        self.events.append(event)
        if self._sink is not None:
            self._sink.write(json.dumps(event, sort_keys=False) + "\n")
            self._sink.flush()
        return event

    def of_type(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]


def dump_jsonl(events: Iterable[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")


def load_jsonl(path: Path) -> list[dict]:
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None

"""What the worker's mirror publishes and everything else reads: one immutable WorkerView.

The actor replaces ``ViewCell.current`` whole and wakes every waiter (the ``/ws/status``
streams) at once, so a hash change reaches the gateways without polling (CONTRACT §2 item 12).
Each view serializes its status frame once; sending a frame afterwards only splices the
current timestamp and uptime into the cached text, so heartbeats to many gateways stay cheap.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import orjson
import trio

from sie_actors.domain.registry import ModelEntry, Registry
from sie_actors.domain.worker_status import status_frame

VERSION = "0.1.0"

# Placeholders serialized into the cached frame and replaced at send time. They are numbers
# that never occur in a real frame; the template checks that each occurs exactly once.
_TS_MARK = 0.123456789012345
_UPTIME_MARK = 987654321987654321


@dataclass(frozen=True)
class Identity:
    """The parts of a frame that do not come from the registry."""

    name: str
    bundle: str
    pool: str = ""
    machine_profile: str = ""
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.monotonic)


def model_item(entry: ModelEntry) -> dict[str, Any]:
    """One ``models[]`` entry: every registry model is 'available' (this worker loads none)."""
    adapter = None
    profiles = entry.profiles
    default = profiles.get("default")
    if isinstance(default, dict) and isinstance(default.get("adapter_path"), str):
        adapter = default["adapter_path"]
    else:
        for name in sorted(profiles):
            path = profiles[name].get("adapter_path")
            if isinstance(path, str):
                adapter = path
                break
    hf_id = entry.config.get("hf_id")
    return {
        "name": entry.model_id,
        "state": "available",
        "device": None,
        "memory_bytes": 0,
        "queue_depth": 0,
        "queue_pending_items": 0,
        "config": {
            "hf_id": hf_id if isinstance(hf_id, str) else entry.model_id,
            "adapter": adapter,
            "profiles": entry.profile_names(),
        },
    }


class FrameTemplate:
    """A serialized status frame with holes for ``timestamp`` and ``server.uptime_seconds``."""

    __slots__ = ("_parts",)

    def __init__(self, frame: dict[str, Any]) -> None:
        text = orjson.dumps(frame).decode("utf-8")
        # Searched with their quoted keys: inside any JSON string a quote is escaped, so
        # these patterns can only match the real fields, whatever a model or worker is named.
        ts_field = '"timestamp":' + orjson.dumps(_TS_MARK).decode()
        up_field = f'"uptime_seconds":{_UPTIME_MARK}'
        if text.count(ts_field) != 1 or text.count(up_field) != 1:
            raise ValueError("frame placeholders must occur exactly once")
        head, rest = text.split(ts_field)
        middle, tail = rest.split(up_field)
        self._parts = (head + '"timestamp":', middle + '"uptime_seconds":', tail)

    def render(self, timestamp: float, uptime_seconds: int) -> str:
        head, middle, tail = self._parts
        return f"{head}{timestamp!r}{middle}{uptime_seconds}{tail}"


@dataclass(frozen=True, eq=False)
class WorkerView:
    """One published state of the worker; never mutated, replaced whole."""

    identity: Identity
    registry: Registry
    epoch: int = 0
    generation: str = ""
    bootstrapped: bool = False
    ready: bool = False
    closing: bool = False
    syncing: bool = False
    loaded_models: tuple[str, ...] = ()
    seq: int = 0  # publish counter, for logs and tests

    @cached_property
    def bundle_config_hash(self) -> str:
        return self.registry.bundle_config_hash(self.identity.bundle)

    @cached_property
    def models(self) -> tuple[ModelEntry, ...]:
        return self.registry.models_in_bundle(self.identity.bundle)

    @property
    def frame_key(self) -> tuple[str, bool, int, tuple[str, ...]]:
        """What a status stream must push at once when it changes."""
        return (self.bundle_config_hash, self.ready, len(self.models), self.loaded_models)

    @cached_property
    def template(self) -> FrameTemplate:
        ident = self.identity
        frame = status_frame(
            name=ident.name,
            ready=self.ready,
            bundle=ident.bundle,
            bundle_config_hash=self.bundle_config_hash,
            pool_name=ident.pool,
            machine_profile=ident.machine_profile,
            models=[model_item(entry) for entry in self.models],
            loaded_models=list(self.loaded_models),
            timestamp=_TS_MARK,
            server={"version": VERSION, "uptime_seconds": _UPTIME_MARK, "pid": ident.pid},
        )
        return FrameTemplate(frame)

    def frame_text(self, now: float | None = None) -> str:
        """The status frame as JSON text, stamped with the current time."""
        uptime = int(time.monotonic() - self.identity.started_at)
        return self.template.render(time.time() if now is None else now, uptime)

    def evolve(self, **changes: Any) -> "WorkerView":
        return replace(self, seq=self.seq + 1, **changes)


class ViewCell:
    """Holds the current view; ``publish`` swaps it and wakes everyone waiting for a change."""

    def __init__(self, view: WorkerView) -> None:
        self.current = view
        self._changed = trio.Event()

    def publish(self, view: WorkerView) -> None:
        self.current = view
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def wait_changed(self, seen: WorkerView) -> WorkerView:
        """Return the current view once it is not ``seen`` (at once if it already isn't)."""
        while self.current is seen:
            await self._changed.wait()
        return self.current

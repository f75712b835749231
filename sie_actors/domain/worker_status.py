"""The worker status frame (`/ws/status`) and the worker announcement, shared by worker and gateway.

Status frames keep the original worker's keys (reference upstream-sie-worker §4.1) so either side
can be the original. Parsing is lenient the way the original gateway is: every field is optional
and unknown keys are ignored, but a present field of the wrong type rejects the frame.

Announcements are ours: a worker publishes on `sie.workers.announce` where its status stream is,
so gateways find workers without a restart or a static list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ParseError
from .jsonbytes import load_object

ANNOUNCE_SUBJECT = "sie.workers.announce"


def _typed(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in obj:
        return default
    value = obj[key]
    # bool is an int in Python: an int field must not accept true/false and vice versa
    if isinstance(value, bool) and kind is not bool:
        raise ParseError(f"status field '{key}' has the wrong type")
    if not isinstance(value, kind):
        raise ParseError(f"status field '{key}' has the wrong type")
    return value


@dataclass(frozen=True)
class WorkerStatus:
    """What a gateway needs from one status frame."""

    name: str = ""
    ready: bool = False
    bundle: str = "default"
    bundle_config_hash: str = ""
    pool_name: str = ""
    machine_profile: str = ""
    gpu_count: int = 1
    loaded_models: tuple[str, ...] = ()
    queue_depth: int = 0

    @classmethod
    def parse(cls, data: bytes | str) -> "WorkerStatus":
        obj = load_object(data, "status frame")
        models = _typed(obj, "models", list, [])
        depth = 0
        for item in models:
            if isinstance(item, dict) and isinstance(item.get("queue_depth"), int):
                depth += item["queue_depth"]
        if not models:
            depth = _typed(obj, "queue_depth", int, 0) or 0
        loaded = _typed(obj, "loaded_models", list, [])
        gpu_count = _typed(obj, "gpu_count", int, 1)
        return cls(
            name=_typed(obj, "name", str, ""),
            ready=_typed(obj, "ready", bool, False),
            bundle=_typed(obj, "bundle", str, "") or "default",
            bundle_config_hash=_typed(obj, "bundle_config_hash", str, ""),
            pool_name=_typed(obj, "pool_name", str, ""),
            machine_profile=_typed(obj, "machine_profile", str, ""),
            gpu_count=gpu_count or 1,
            loaded_models=tuple(m for m in loaded if isinstance(m, str)),
            queue_depth=depth,
        )


def status_frame(*, name: str, ready: bool, bundle: str, bundle_config_hash: str,
                 pool_name: str = "", machine_profile: str = "", models: list[dict] | None = None,
                 loaded_models: list[str] | None = None, timestamp: float = 0.0,
                 server: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    """A full status frame with the original worker's keys (a CPU-only worker: no GPUs)."""
    frame: dict[str, Any] = {
        "timestamp": timestamp,
        "ready": ready,
        "name": name,
        "machine_profile": machine_profile,
        "pool_name": pool_name,
        "gpu_count": 0,
        "bundle": bundle,
        "bundle_config_hash": bundle_config_hash,
        "loaded_models": list(loaded_models or []),
        "max_batch_requests": 64,
        "server": server or {},
        "gpus": [],
        "models": list(models or []),
        "counters": {},
        "histograms": {},
    }
    if extra:
        frame.update(extra)
    return frame


@dataclass(frozen=True)
class WorkerAnnouncement:
    """`{"name", "url", "bundle", "interval_s"}`: where a worker's status stream is, and how often
    it repeats this announcement (a gateway forgets an announced worker that goes quiet)."""

    name: str
    url: str
    bundle: str
    interval_s: float = 5.0

    def to_json_bytes(self) -> bytes:
        return orjson.dumps({"name": self.name, "url": self.url, "bundle": self.bundle,
                             "interval_s": self.interval_s})

    @classmethod
    def from_json(cls, data: bytes | str) -> "WorkerAnnouncement":
        obj = load_object(data, "worker announcement")
        url = obj.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ParseError("worker announcement needs an http(s) 'url'")
        interval = obj.get("interval_s", 5.0)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ParseError("worker announcement 'interval_s' must be a positive number")
        name = obj.get("name", "")
        bundle = obj.get("bundle", "default")
        if not isinstance(name, str) or not isinstance(bundle, str):
            raise ParseError("worker announcement 'name' and 'bundle' must be strings")
        return cls(name=name, url=url.rstrip("/"), bundle=bundle or "default",
                   interval_s=float(interval))


def status_ws_url(worker_url: str) -> str:
    """`http://h:p` → `ws://h:p/ws/status` (and https → wss), as the original gateway dials."""
    base = worker_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return base + "/ws/status"

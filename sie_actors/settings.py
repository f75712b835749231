"""Parsing helpers for the services' environment settings: one rule for flags, numbers and lists.

A bad value stops the service at start with a message naming the variable, instead of surfacing
later as a confusing runtime error.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {raw!r}")
    return value


def env_list(value: str | None) -> tuple[str, ...]:
    """Comma-separated, trimmed, empties dropped."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def env_path(environ: Mapping[str, str], name: str):
    from pathlib import Path
    raw = environ.get(name)
    return Path(raw) if raw else None


def host_name(environ: Mapping[str, str]) -> str:
    return environ.get("POD_NAME") or environ.get("HOSTNAME") or socket.gethostname()


def pid() -> int:
    return os.getpid()

"""The environment of a child service: the one rule every launcher uses."""

from __future__ import annotations

import os
from typing import Mapping

# What ties a process to one place in one cluster: a child never inherits these from us.
WIRING_VARIABLES = ("SIE_AUTH_TOKEN", "SIE_ADMIN_TOKEN", "SIE_CONFIG_STORE_DIR", "SIE_NATS_URL",
                    "SIE_CONFIG_SERVICE_URL", "SIE_GATEWAY_WORKERS", "SIE_GATEWAY_PEERS",
                    "POD_NAME", "SIE_BUNDLE", "SIE_CONFIG_RESTORE")


def child_env(base: Mapping[str, str] | None = None, *, keep_tuning: bool = False,
              **extra: str) -> dict[str, str]:
    """The environment of a child service: `base` (default: ours) cleaned, then `extra`.

    The one rule for every launcher (a child started without an environment gets
    `child_env()`). The wiring variables are always dropped (each child gets its own). With
    `keep_tuning` (`sie-cluster up`, `sie-chaos`) the other `SIE_*` settings pass through, so
    `SIE_LOG_LEVEL=debug sie-cluster up` does what it says; without it (tests, `sie-bench`)
    every `SIE_*` is dropped, so a developer's shell cannot change a result. Output is
    unbuffered, so a child's log is complete up to the moment it is killed.
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items()
           if k not in WIRING_VARIABLES and (keep_tuning or not k.startswith("SIE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env

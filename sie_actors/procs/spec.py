"""What a child process is: its name, command line, environment, port and readiness check.

Planners (`sie_cluster.topology.plan_cluster`) write specs without starting anything; the one
process layer (`child.Child`, and the sync wrapper over it) runs them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

from .ports import LOOPBACK


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None  # None: `child_env()`, never our own environment
    port: int | None = None  # None: a helper nobody connects to (no readiness check)
    ready_path: str | None = None  # HTTP path that answers 200 when ready; None: the port accepts

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def service_argv(module: str, port: int, args: Sequence[str] = ()) -> tuple[str, ...]:
    """The command line of one of our services (`python -m sie_config serve ...`) on loopback."""
    return (sys.executable, "-m", module, "serve", "--host", LOOPBACK, "--port", str(port),
            *args)

"""Real processes on loopback: nats-server and our services, for the cluster, chaos, tests, bench.

One process layer. `child.Child` is the trio-native child (start in its own session with its
log, readiness, stop with a deadline, kill, pause, resume) that `sie-cluster up` and `sie-chaos`
supervise (`sie_cluster.runner`); `sync` wraps the same `Child` for sync code (test fixtures,
`sie-bench`) through one long-lived trio loop (`portal`). A `spec.ProcessSpec` is what a child
runs, `env.child_env` the one rule for its environment. Everything waits for a condition with a
deadline; nothing sleeps blindly.
"""

from __future__ import annotations

from .child import Child, ChildExited
from .env import WIRING_VARIABLES, child_env
from .nats import nats_server_argv, nats_server_binary
from .polling import wait_for, wait_until
from .ports import LOOPBACK, free_port, free_port_block, port_accepts
from .spec import ProcessSpec, service_argv
from .sync import ManagedProcess, NatsServer, ServiceProcess

__all__ = [
    "Child",
    "ChildExited",
    "LOOPBACK",
    "ManagedProcess",
    "NatsServer",
    "ProcessSpec",
    "ServiceProcess",
    "WIRING_VARIABLES",
    "child_env",
    "free_port",
    "free_port_block",
    "nats_server_argv",
    "nats_server_binary",
    "port_accepts",
    "service_argv",
    "wait_for",
    "wait_until",
]

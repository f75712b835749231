"""CPU time and memory of one process, read from /proc (no psutil), and the machine's facts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = data[data.rindex(b")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of `pid`, in KiB, from /proc/PID/status."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


@dataclass
class CpuMeter:
    """Share of one core a process used between `start()` and `stop()` (1.0 = one core)."""

    pid: int
    _cpu0: float = 0.0
    _wall0: float = 0.0

    def start(self) -> "CpuMeter":
        self._cpu0 = cpu_seconds(self.pid)
        self._wall0 = time.monotonic()
        return self

    def stop(self) -> float:
        cpu = cpu_seconds(self.pid) - self._cpu0
        wall = time.monotonic() - self._wall0
        return cpu / wall if wall > 0 else 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine_facts() -> dict[str, str]:
    from sie_actors.procs import nats_server_binary
    try:
        nats = subprocess.run([nats_server_binary(), "--version"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        nats = "unknown"
    return {
        "nproc": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})",
        "cpu": _cpu_model(),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
        "stack": ", ".join(f"{d} {_version(d)}" for d in
                           ("trio", "hypercorn", "quart", "quart-trio", "trio-websocket",
                            "nats-py", "orjson")),
        "nats-server": nats,
    }


def own_cpu_seconds() -> float:
    """CPU of this process plus all its children that have been waited for (utime, stime,
    cutime, cstime of /proc/self/stat): every process the benchmark started, once reaped."""
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: everything but idle/iowait)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / TICKS


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class MachineLoad:
    """How busy the machine was with work that is not the benchmark's, over a run: a reader can
    tell a quiet measurement from one that shared the two cores with something else."""

    def __init__(self) -> None:
        self.load_before = load_average()
        self._busy0 = machine_busy_seconds()
        self._own0 = own_cpu_seconds()
        self._wall0 = time.monotonic()

    def summary(self) -> str:
        wall = time.monotonic() - self._wall0
        busy = (machine_busy_seconds() - self._busy0) / wall
        own = (own_cpu_seconds() - self._own0) / wall
        return (f"load average before {self.load_before}; during the run the machine was busy "
                f"{busy:.2f} cores on average, of which {max(busy - own, 0):.2f} cores were not "
                f"this benchmark's processes")

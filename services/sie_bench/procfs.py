"""CPU time and memory of processes and of the machine (psutil), and the machine's facts.

psutil reads the same /proc files we used to parse by hand (stat, status, meminfo, loadavg), with
the edge cases handled (command names with spaces, kernels without some fields) and tested on
many kernels; the benchmark only needs its numbers.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata

import psutil


def cpu_seconds(pid: int) -> float:
    """user + system CPU of `pid` (all its threads), in seconds."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def memory_kib(pid: int) -> dict[str, int]:
    """RSS and peak RSS (VmHWM) of `pid`, in KiB."""
    process = psutil.Process(pid)
    values = {"VmRSS": process.memory_info().rss // 1024}
    try:
        # Peak RSS has no psutil API; the kernel's VmHWM line is its only source.
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    values["VmHWM"] = int(line.split()[1])
    except OSError:
        pass
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
    return f"{psutil.virtual_memory().total / 1024 ** 3:.1f} GiB"


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
    """CPU of this process plus all its children that have been waited for: every process the
    benchmark started, once reaped."""
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in psutil.getloadavg())


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

"""Who holds a busy port: read from /proc, so `sie-cluster up` can say which process to stop.

A second cluster on the same ports used to die in a 30-line traceback; the user needs one line:
the port, the process that has it (when this user can see it), and the flag that moves ours.
Linux only, best effort: anything unreadable just means "unknown".
"""

from __future__ import annotations

import os
from pathlib import Path

from sie_actors.procs import port_accepts

LISTEN = "0A"  # TCP state in /proc/net/tcp


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[str]:
    """Socket inodes listening on `port` (IPv4 or IPv6, any address)."""
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """`pid 1234 (nats-server -a 127.0.0.1 -p 4222)` for the process listening on `port`."""
    targets = {f"socket:[{inode}]" for inode in listening_inodes(port, proc)}
    if not targets:
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # another user's process, or gone
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    return f"pid {entry.name} ({command_line(entry)})"
            except OSError:
                continue
    return None


def command_line(entry: Path, limit: int = 80) -> str:
    try:
        raw = (entry / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def busy_port_message(name: str, port: int, flag: str) -> str:
    holder = port_holder(port)
    held = f"held by {holder}" if holder else "held by another process"
    return (f"port {port} for {name} is already in use ({held}); stop it, or choose other "
            f"ports with {flag}")


def first_busy_port(ports: list[tuple[str, int, str]]) -> str | None:
    """The message for the first (name, port, flag) whose port accepts connections, else None."""
    for name, port, flag in ports:
        if port_accepts(port):
            return busy_port_message(name, port, flag)
    return None

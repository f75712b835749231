"""Loopback ports: a free one, a free block, and whether something accepts on one."""

from __future__ import annotations

import random
import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_port_block(size: int, start: int = 20000, stop: int = 32000) -> int:
    """A base port such that base .. base+size-1 are all free now (for fixed-layout clusters).

    The range stays below Linux's ephemeral ports (32768+), where a port that looks free can
    still be taken by a just-closed outgoing connection and refuse a bind for a minute.
    """
    for _ in range(200):
        base = random.randrange(start, stop - size)
        if not any(port_accepts(base + i) for i in range(size)):
            try:
                for i in range(size):
                    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                        sock.bind((LOOPBACK, base + i))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False

"""The data directory of `sie-cluster up`: one cluster at a time, and a way back to empty.

Two clusters on different ports used to share `./sie-cluster-data` silently (one store, two
writers, interleaved logs). An exclusive `fcntl.flock` on a lock file in the directory refuses
the second one; the kernel drops the lock when the holder exits, however it exits, so a crash
never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

LOCK_FILE = ".sie-cluster.lock"
STORE_DIR = "config-store"
STORE_MARKERS = ("epoch", "models", "generation", "idempotency")


class DataDirError(Exception):
    """A data directory we must not use; the message says why and what to do."""


class DataDirLock:
    """Held for the life of the cluster; `pid` of the holder is written into the file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirError(
                f"data dir {self.path.parent} is in use by another sie-cluster (pid {holder}); "
                "stop that one (Ctrl-C in its terminal), or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def looks_like_store(path: Path) -> bool:
    """A directory holding only what a config store holds (so `--fresh` never moves anything
    else a user pointed --data-dir at)."""
    if not path.is_dir():
        return False
    names = {entry.name for entry in path.iterdir()}
    return bool(names) and all(name in STORE_MARKERS or name.startswith(".")
                               or name.endswith(".tmp") for name in names)


def reset_store(data_dir: Path, clock=time.gmtime) -> Path | None:
    """`--fresh`: move the store aside (not deleted: a way back) so sie-config starts empty.

    Returns where it went, or ``None`` when there was nothing to move. Call with the lock held.
    """
    store = data_dir / STORE_DIR
    if not store.exists():
        return None
    if not looks_like_store(store):
        raise DataDirError(f"--fresh: {store} does not look like a sie-config store (it holds "
                           "other files); move it away yourself")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", clock())
    target = data_dir / f"{STORE_DIR}.before-fresh-{stamp}"
    suffix = 1
    while target.exists():
        suffix += 1
        target = data_dir / f"{STORE_DIR}.before-fresh-{stamp}-{suffix}"
    shutil.move(str(store), str(target))
    return target

"""Local-disk backend: every write is an atomic, durable replace.

Why each step of ``write_bytes`` is there:

* the temp file lives in the target's directory, because ``os.replace`` is atomic only within
  one filesystem;
* ``fsync`` of the temp file before the rename, so the name never points at unwritten blocks;
* ``os.replace`` swaps the name in one step: a reader or a restarted process sees the old or
  the new content, never a truncated file (a SIGKILL at any instruction leaves one of the two);
* ``fsync`` of the directory after the rename, so the new name itself survives a power loss.
  That also orders writes: when ``write_bytes`` returns, this write is durable before the
  caller starts the next one, which is what ConfigStore.commit_write relies on.
* every step goes through one descriptor of the target's directory, opened first (temp file
  created with ``dir_fd``, ``os.replace`` with ``src_dir_fd``/``dst_dir_fd``, ``fsync`` of that
  descriptor), so the temp file, the rename and the fsync all happen in the same directory even
  if its path is renamed or replaced meanwhile. Re-resolving the path for the directory fsync
  turned a write that had already replaced the file into a reported failure (sie-chaos's store
  fault: sie-config answered 503 "nothing was applied", and the model appeared at the next
  restart).

A temp file left behind by a kill is hidden (leading dot, ``.tmp`` suffix), ignored by every
listing, and swept at the next open once it is old enough to be surely abandoned.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
from pathlib import Path

from sie_actors.store.errors import StoreUnavailable
from sie_actors.store.layout import IDEMPOTENCY_DIR, MODELS_DIR, TEMP_SUFFIX, is_temp_file_name

log = logging.getLogger(__name__)

# A write takes milliseconds; a temp file this old belongs to a process that died.
STALE_TEMP_SECONDS = 3600.0
_FILE_MODE = 0o644
# Filesystems that cannot fsync a directory say so with these; nothing more can be done there.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


class LocalBackend:
    """Files under a local directory, written with temp file + fsync + rename + dir fsync."""

    def __init__(self, base: Path) -> None:
        self._base = base

    @classmethod
    def open(cls, base: Path) -> LocalBackend:
        """Create ``{base}/models`` up front (as the original does) and sweep stale temp files.

        Creating the directory at open surfaces a wrong or unwritable path at start-up; an
        already existing directory on a read-only store is fine, so reads keep working there.
        """
        backend = cls(base)
        try:
            (base / MODELS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create store directory {base / MODELS_DIR}: {exc}"
            ) from exc
        backend.sweep_stale_temps()
        return backend

    @property
    def location(self) -> str:
        return str(self._base)

    def _path(self, rel: str) -> Path:
        return self._base.joinpath(*rel.split("/"))

    def read_bytes(self, rel: str) -> bytes | None:
        path = self._path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc}") from exc

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        try:
            self._ensure_dir(path.parent)
            _atomic_write(path, data)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {path}: {exc}") from exc

    def delete(self, rel: str) -> bool:
        # No directory fsync: a deletion undone by a power loss is merely repeated later.
        path = self._path(rel)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete {path}: {exc}") from exc
        return True

    def exists(self, rel: str) -> bool:
        # os.stat instead of Path.exists, which answers False for some I/O errors.
        path = self._path(rel)
        try:
            os.stat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreUnavailable(f"cannot stat {path}: {exc}") from exc
        return True

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    def list_names(self, rel_dir: str) -> list[str]:
        path = self._path(rel_dir)
        try:
            with os.scandir(path) as entries:
                return [e.name for e in entries if e.is_file(follow_symlinks=True)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(f"cannot list {path}: {exc}") from exc

    def list_modified(self, rel_dir: str) -> dict[str, float | None]:
        path = self._path(rel_dir)
        try:
            with os.scandir(path) as entries:
                return {e.name: e.stat(follow_symlinks=True).st_mtime_ns / 1e9
                        for e in entries if e.is_file(follow_symlinks=True)}
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreUnavailable(f"cannot list {path}: {exc}") from exc

    def sweep_stale_temps(self, max_age: float = STALE_TEMP_SECONDS) -> int:
        """Remove temp files abandoned by killed writers; best effort, never fails the open.

        Only old files are removed, so a write still in flight in another process is not cut.
        """
        removed = 0
        cutoff = time.time() - max_age
        for directory in (self._base, self._base / MODELS_DIR, self._base / IDEMPOTENCY_DIR):
            try:
                with os.scandir(directory) as entries:
                    stale = [
                        e.path
                        for e in entries
                        if is_temp_file_name(e.name)
                        and e.stat(follow_symlinks=False).st_mtime < cutoff
                    ]
                for temp in stale:
                    os.unlink(temp)
                    removed += 1
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):
                    log.debug("store: could not sweep temp files in %s: %s", directory, exc)
        if removed:
            log.info("store: removed %d abandoned temp file(s) under %s", removed, self._base)
        return removed

    def _ensure_dir(self, directory: Path) -> None:
        """Create a lazily used directory (idempotency/) durably, i.e. fsync its parent too."""
        if directory.is_dir():
            return
        directory.mkdir(parents=True, exist_ok=True)
        _fsync_dir(directory.parent)


def _atomic_write(path: Path, data: bytes) -> None:
    directory = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fd, temp = _create_temp(directory, path.name)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), _FILE_MODE)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=directory)
            except OSError:
                pass
            raise
        _fsync_fd(directory, path.parent)
    finally:
        os.close(directory)


def _create_temp(directory: int, name: str) -> tuple[int, str]:
    """A new hidden temp file next to ``name`` in the directory ``directory`` (a descriptor)."""
    for _ in range(100):
        temp = f".{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600,
                           dir_fd=directory), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temp file name for {name}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _fsync_fd(fd, directory)
    finally:
        os.close(fd)


def _fsync_fd(fd: int, directory: Path) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
        log.debug("store: directory fsync unsupported on %s", directory)

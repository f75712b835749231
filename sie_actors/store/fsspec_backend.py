"""Backend for any fsspec filesystem (memory:// for tests, s3://, gs://, ...).

Only generic fsspec calls are used, so no cloud SDK specifics live here. Object stores have no
rename, so each write is one ``pipe_file`` (a single PUT): atomic per object (readers see the
old or the new object, never part of one) but with no compare-and-swap, hence last writer wins.
That is safe only under the single-writer assumption of sie-config (one replica per store).
"""

from __future__ import annotations

import posixpath
from datetime import datetime, timezone
from typing import Any, Callable

from sie_actors.store.errors import StoreUnavailable


class FsspecBackend:
    """Files under ``root`` of an fsspec filesystem.

    Remote client libraries raise many unrelated exception types (botocore, google-auth,
    aiohttp, ...), so any exception other than "not found" becomes StoreUnavailable here.
    """

    def __init__(self, fs: Any, root: str, *, timeout: float | None = 10.0,
                 on_close: Callable[[], None] | None = None) -> None:
        self._fs = fs
        self._on_close = on_close
        self._root = root.rstrip("/")
        # Cloud clients retry for minutes against an unreachable or paused endpoint; the writer
        # must answer 503 long before that. fsspec's async filesystems (s3fs, gcsfs) take a
        # per-call `timeout` and cancel the request when it passes.
        self._bounded = {"timeout": timeout} if timeout and getattr(fs, "async_impl", False) \
            else {}

    def close(self) -> None:
        """Let go of what the filesystem holds beyond itself (its asyncio loop lease)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    @property
    def location(self) -> str:
        return str(self._fs.unstrip_protocol(self._root))

    def _path(self, rel: str) -> str:
        return f"{self._root}/{rel}" if self._root else rel

    def _url(self, path: str) -> str:
        return str(self._fs.unstrip_protocol(path))

    def read_bytes(self, rel: str) -> bytes | None:
        path = self._path(rel)
        try:
            return bytes(self._fs.cat_file(path, **self._bounded))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise StoreUnavailable(f"cannot read {self._url(path)}: {_describe(exc)}") from exc

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        try:
            self._fs.pipe_file(path, data, **self._bounded)
        except Exception as exc:
            raise StoreUnavailable(f"cannot write {self._url(path)}: {_describe(exc)}") from exc

    def delete(self, rel: str) -> bool:
        path = self._path(rel)
        try:
            self._fs.rm_file(path, **self._bounded)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise StoreUnavailable(f"cannot delete {self._url(path)}: {_describe(exc)}") from exc
        return True

    def exists(self, rel: str) -> bool:
        # fs.exists() answers False on *any* error; info() lets real failures through.
        path = self._path(rel)
        try:
            self._fs.info(path, **self._bounded)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise StoreUnavailable(f"cannot stat {self._url(path)}: {_describe(exc)}") from exc
        return True

    def list_names(self, rel_dir: str) -> list[str]:
        return list(self.list_modified(rel_dir))

    def list_modified(self, rel_dir: str) -> dict[str, float | None]:
        path = self._path(rel_dir)
        try:
            # Listings are cached by some implementations (s3fs); another process may have
            # written since, and a restore must see everything.
            self._fs.invalidate_cache(path)
            entries = self._fs.ls(path, detail=True, **self._bounded)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise StoreUnavailable(f"cannot list {self._url(path)}: {_describe(exc)}") from exc
        return {
            posixpath.basename(entry["name"].rstrip("/")): _modified(entry)
            for entry in entries
            if entry.get("type") == "file"
        }


# Where each fsspec implementation puts a file's last write in a listing entry: local and gcsfs
# "mtime", s3fs "LastModified", gcsfs also "updated", the memory filesystem only "created"
# (it replaces a file whole on every write, so that is the last write there too).
_MODIFIED_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")


def _modified(entry: dict) -> float | None:
    """The entry's last modification time in seconds, or None when no known key holds one."""
    for key in _MODIFIED_KEYS:
        value = entry.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp() if value.tzinfo else value.replace(
                tzinfo=timezone.utc).timestamp()
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return _modified({key: parsed})
    return None


def _describe(exc: BaseException) -> str:
    """Some client errors (timeouts) have an empty message; name the type then."""
    return str(exc) or type(exc).__name__

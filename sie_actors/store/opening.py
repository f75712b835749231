"""Turning a store URL into a backend.

Local paths get our own backend rather than fsspec's local filesystem, because crash
consistency needs fsync + rename + directory fsync, which fsspec's ``pipe_file`` does not do.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import fsspec
import fsspec.asyn
import fsspec.core

from sie_actors.aio import loop_thread

from sie_actors.store.backend import Backend
from sie_actors.store.errors import StoreBackendMissing, StoreUnavailable
from sie_actors.store.fsspec_backend import FsspecBackend
from sie_actors.store.local_backend import LocalBackend

_LOCAL_SCHEMES = ("file://", "local://")
log = logging.getLogger(__name__)


def open_backend(url: str, *, timeout: float | None = 10.0) -> Backend:
    """Pick the backend for ``url``: a path or ``file://`` is local, any other scheme is fsspec.

    Raises ValueError for an empty URL or an unknown scheme, StoreBackendMissing when the
    scheme's optional package is not installed, StoreUnavailable when the store cannot be set up.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("store URL is empty")
    url = url.strip()
    for scheme in _LOCAL_SCHEMES:
        if url.startswith(scheme):
            return _open_local(url[len(scheme) :])
    if "://" not in url:
        return _open_local(url)
    return _open_fsspec(url, timeout)


def _open_local(path: str) -> LocalBackend:
    if not path:
        raise ValueError("store URL names no directory")
    # Absolute now, so a later chdir of the process cannot move the store.
    return LocalBackend.open(Path(path).expanduser().absolute())


def _open_fsspec(url: str, timeout: float | None) -> FsspecBackend:
    """An async filesystem (s3fs, gcsfs) runs on the process's asyncio loop thread, leased until
    the backend is closed; its own instance, so a later loop is never paired with a stale one."""
    lease = None
    try:
        protocol = fsspec.core.split_protocol(url)[0]
        if fsspec.get_filesystem_class(protocol).async_impl:
            lease = loop_thread.acquire()
        try:
            fs, root = fsspec.core.url_to_fs(
                url, **({"skip_instance_cache": True} if lease else {}))
        except BaseException:
            if lease is not None:
                loop_thread.release(lease)
            raise
    except ImportError as exc:
        raise StoreBackendMissing(
            f"store URL {url!r} needs an optional package that is not installed: {exc} "
            "(s3:// needs s3fs, gs:// needs gcsfs)"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"store URL {url!r} is not usable: {exc}") from exc
    except Exception as exc:
        raise StoreUnavailable(f"cannot set up store {url!r}: {exc}") from exc
    return FsspecBackend(fs, root, timeout=timeout,
                         on_close=partial(_close_async_fs, fs, lease) if lease else None)


def _close_async_fs(fs, lease: loop_thread.LoopThread) -> None:
    """Close the filesystem's HTTP session on the loop, then give the loop back.

    s3fs and gcsfs close their sessions only from a finalizer (garbage collection or exit), when
    the loop may already be stopped: aiohttp then reports an "Unclosed client session". These
    two attributes are where each keeps its session; anything else has nothing to close here."""
    try:
        s3 = getattr(fs, "_s3creator", None)  # s3fs: the aiobotocore client's context
        session = getattr(fs, "_session", None)  # gcsfs: an aiohttp session
        if s3 is not None:
            fsspec.asyn.sync(fs.loop, s3.__aexit__, None, None, None, timeout=5)
        elif session is not None and not session.closed:
            fsspec.asyn.sync(fs.loop, session.close, timeout=5)
    except Exception as exc:
        log.info("closing the session of %s failed: %s", type(fs).__name__, exc)
    finally:
        loop_thread.release(lease)

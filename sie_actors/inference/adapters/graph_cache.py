"""Built encoder graphs kept on disk, so a model loads again without building its graph again.

Why: building a BERT graph from ``model.safetensors`` and serialising it is most of a load
(all-MiniLM-L6-v2 on an idle core: 0.52 s of 0.66 s), and it holds the interpreter for up to
140 ms at a time. A worker restarted on a busy machine spent 2-3 s preloading its models, with
its event loop starved meanwhile (sie-chaos: a killed worker caught up only when its loads were
over). With an entry here a load is one file read and onnxruntime's session (0.12 s).

What is kept is the serialised graph exactly as it is handed to onnxruntime, not an optimised
one (those are tied to the machine that optimised them). Its key is everything it is built
from: the builder's own source, the shape, and each input file's path, size and modification
time; a changed file or a new builder is a new key. Entries are written to a temporary name and
renamed, so two workers sharing the directory never read half an entry; an entry that cannot be
read, written or used costs a rebuild, never a failed load.

It is bounded: each entry is about the size of the model's weights (90 MB for MiniLM), and a new
builder or changed weights leave the old entry unused forever. After each write the directory
keeps the ``KEEP`` entries used last (a read counts as a use) and loses the rest, and temporary
files a killed writer left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("sie_actors.inference.graph_cache")

SUFFIX = ".onnx"
PARTIAL = ".partial-"
KEEP = 8                     # entries kept: the models a worker serves, with room to spare
STALE_PARTIAL_S = 3600.0     # a write takes seconds; a temporary file this old is abandoned


def graph_key(builder: Path, shape: Any, inputs: Sequence[Path]) -> str:
    """The entry's name: a digest of the builder's source, ``shape`` and each input's identity
    (resolved path, size, modification time in ns). OSError when an input is unreadable."""
    parts: dict[str, Any] = {
        "builder": hashlib.sha256(builder.read_bytes()).hexdigest(),
        "shape": asdict(shape) if is_dataclass(shape) else shape,
        "inputs": [],
    }
    for path in inputs:
        stat = path.stat()
        parts["inputs"].append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class GraphCache:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("graph cache: cannot read %s: %s", path, exc)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the pruning keeps what is used
        return data

    def put(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key``; a failure is logged (the next load builds again)."""
        target = self._path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=PARTIAL,
                                             suffix=SUFFIX)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            log.warning("graph cache: cannot keep %s: %s", target, exc)
            return
        self.prune()

    def prune(self, keep: int = KEEP, now: float | None = None) -> None:
        """Keep the ``keep`` entries used last; drop the rest and abandoned temporary files.
        Best effort: another worker may be pruning the same directory."""
        now = time.time() if now is None else now
        entries: list[tuple[float, Path]] = []
        try:
            with os.scandir(self.directory) as listing:
                for item in listing:
                    if not item.name.endswith(SUFFIX) or not item.is_file():
                        continue
                    with contextlib.suppress(OSError):
                        used = item.stat().st_mtime
                        if item.name.startswith(PARTIAL):
                            if now - used > STALE_PARTIAL_S:
                                os.unlink(item.path)
                        else:
                            entries.append((used, Path(item.path)))
        except OSError as exc:
            log.warning("graph cache: cannot list %s: %s", self.directory, exc)
            return
        entries.sort(reverse=True)
        for _used, path in entries[keep:]:
            with contextlib.suppress(OSError):
                path.unlink()

    def forget(self, key: str) -> None:
        """Drop an entry that turned out unusable."""
        with contextlib.suppress(OSError):
            self._path(key).unlink()


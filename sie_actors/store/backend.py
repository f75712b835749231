"""The few blocking operations the store needs from a storage medium.

Keeping the surface this small is what lets the same ConfigStore logic run on a local disk
(atomic, durable renames) and on object stores (single PUTs) without branching on the backend.
"""

from __future__ import annotations

from typing import Protocol


class Backend(Protocol):
    """Byte storage addressed by relative "/"-separated paths.

    Contract shared by all implementations, so that ConfigStore can rely on it:
    a missing file is an answer (None / False / []), never an error; every other failure
    raises StoreUnavailable; ``write_bytes`` replaces the whole file in one step, so a reader
    (or a restart after a crash) sees either the old or the new content, never a mix.
    """

    @property
    def location(self) -> str:
        """Human-readable base location, for logs and error messages."""
        ...

    def read_bytes(self, rel: str) -> bytes | None:
        """Whole content, or None when the file does not exist."""
        ...

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace the file's content in one step; returns only once the content is persisted."""
        ...

    def delete(self, rel: str) -> bool:
        """Remove the file; False when it was already gone."""
        ...

    def exists(self, rel: str) -> bool:
        """Whether the file exists; an I/O failure raises instead of answering False."""
        ...

    def list_names(self, rel_dir: str) -> list[str]:
        """Base names of the regular files directly in ``rel_dir``; [] when it does not exist."""
        ...

    def list_modified(self, rel_dir: str) -> dict[str, float | None]:
        """Like ``list_names``, with each file's last modification time (seconds since the
        epoch; None where the medium does not say). One listing, not a stat per file."""
        ...

    def close(self) -> None:
        """Release what the backend holds beyond its files (idempotent); reads after it fail."""
        ...

"""Persistence of sie-config: epoch, generation, models and idempotency records.

Layout under ``{base}`` (the first two are the original sie-config's, byte for byte, so either
implementation can restore the other's store; the rest are ours and ignored by the original)::

    epoch                      plain-text integer, no newline
    models/{id, "/"->"__"}.yaml  one YAML document per API-written model
    generation                 opaque string naming this epoch sequence (uuid4 hex)
    idempotency/{sha256}.json  successful outcomes by Idempotency-Key

Crash consistency of a creating write (``commit_write``)
--------------------------------------------------------
Invariant after any crash: every model file present is counted by the epoch (epoch >= number
of creating writes whose model is in the store), and the epoch is never lower than one already
published. The write is two single-file steps, in this order:

1. epoch := new_epoch, persisted (durable before step 2 starts);
2. the model file, replaced whole.

Each step is atomic (local: temp + fsync + rename + dir fsync; object stores: one PUT), so a
kill lands before 1 (nothing changed), between 1 and 2 (epoch counts a write whose model is
absent: an epoch *ahead* of the models, which is allowed - gateways only see a gap and resync),
or after 2 (both present). The reverse order, the original's, has a window where a model exists
that the epoch does not count; a restart then reuses that epoch number for a different write.
The caller publishes new_epoch only after commit_write returns, so every published epoch is
already on disk. A StoreUnavailable from commit_write means "maybe partly applied, still
consistent": the epoch file may already hold new_epoch (and, if only the final directory fsync
failed, the model too), so the caller must not publish or apply the write, and should number
its next write from ``max(its epoch, read_epoch()) + 1`` rather than reuse new_epoch.

What object stores (s3://, gs://) can and cannot guarantee here
-------------------------------------------------------------
A PUT is atomic and, on S3 and GCS, read-after-write consistent, so the ordering above holds
once each PUT has returned. There is no rename and ConfigStore uses no compare-and-swap:
concurrent writers are last-writer-wins and two replicas could both write epoch N. sie-config is
therefore a single writer per store (one replica); the store does not detect a second one.

Failures: every I/O error of a write, or of a read whose answer matters (the epoch, a model
about to be merged, listings), raises StoreUnavailable (-> HTTP 503), never anything else, so a
full or read-only disk cannot crash the service. Reads do not need write access.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sie_actors.store import layout
from sie_actors.store.backend import Backend
from sie_actors.store.idempotency import decode_record, encode_record, is_expired
from sie_actors.store.opening import open_backend

log = logging.getLogger(__name__)


class ConfigStore:
    """Blocking store API; the async service calls it through ``trio.to_thread.run_sync``.

    Methods are safe to call from several threads at once (each write is a self-contained
    replace), but the *sequence* epoch-then-model is only meaningful with one writer, which
    the service guarantees with its write lock.
    """

    def __init__(self, backend: Backend, *, clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._clock = clock

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], float] = time.time,
             timeout: float | None = 10.0) -> ConfigStore:
        """Open a store by URL: a local path, ``file://``, ``memory://name``, ``s3://``, ``gs://``.

        The clock is injectable so idempotency expiry can be tested without waiting;
        ``timeout`` bounds each remote call (object stores), so an unreachable store fails fast.
        """
        return cls(open_backend(url, timeout=timeout), clock=clock)

    def close(self) -> None:
        """Release the backend's resources (an object store's lease on the asyncio loop)."""
        self._backend.close()

    @property
    def location(self) -> str:
        """Where the store lives, for logs."""
        return self._backend.location

    # --- epoch and generation -------------------------------------------------------------

    def read_epoch(self) -> int:
        """The persisted epoch; 0 when absent or unreadable garbage, as in the original.

        Garbage only comes from outside tampering (writes are atomic), so it is logged rather
        than fatal; an I/O error, however, raises, because guessing 0 could lower the epoch.
        """
        data = self._backend.read_bytes(layout.EPOCH_FILE)
        if data is None:
            return 0
        epoch = _parse_epoch(data)
        if epoch is None:
            log.warning(
                "store: epoch file %s/%s holds %r, not a non-negative integer; using 0",
                self.location,
                layout.EPOCH_FILE,
                data[:40],
            )
            return 0
        return epoch

    def write_epoch(self, n: int) -> None:
        """Persist the epoch as the original does: ``str(n)``, no newline."""
        self._backend.write_bytes(layout.EPOCH_FILE, _encode_epoch(n))

    def read_or_create_generation(self) -> str:
        """The generation of this store, created once so it survives restarts.

        An empty or undecodable file (tampering) is replaced by a fresh generation: a changed
        generation only makes gateways resync, while a wrong "same" one could hide a reset.
        """
        data = self._backend.read_bytes(layout.GENERATION_FILE)
        if data is not None:
            generation = _parse_generation(data)
            if generation is not None:
                return generation
            log.warning(
                "store: generation file of %s is unusable; creating a new one", self.location
            )
        generation = uuid.uuid4().hex
        self._backend.write_bytes(layout.GENERATION_FILE, generation.encode("ascii"))
        return generation

    # --- models ---------------------------------------------------------------------------

    def write_model(self, model_id: str, yaml_text: str) -> None:
        """Replace a model's YAML document (no epoch change; see commit_write for writes)."""
        path = layout.model_path(model_id)
        self._backend.write_bytes(path, yaml_text.encode("utf-8"))

    def read_model(self, model_id: str) -> str | None:
        """The stored YAML text, or None when absent.

        Undecodable bytes (tampering) count as absent, with a warning, so the next write of that
        model replaces the file instead of failing forever.
        """
        path = layout.model_path(model_id)
        return self._decode_model(path, self._backend.read_bytes(path))

    def model_exists(self, model_id: str) -> bool:
        """Whether a model file exists (I/O failure raises rather than answering False)."""
        return self._backend.exists(layout.model_path(model_id))

    def list_model_ids(self) -> list[str]:
        """Ids of stored models, sorted, mapped back from file names; temp files are skipped."""
        return sorted(self._model_files())

    def recent_models(self, count: int) -> list[tuple[str, float]] | None:
        """The ``count`` models written last as (id, modification time), newest first; None
        when the medium does not tell when its files were written.

        Ties at the cut (coarse timestamps: S3 keeps whole seconds) are all included, so the
        answer is never short of a model written as late as the last one in it. The writes of
        the last ``count`` epochs are among these models: each epoch writes at most one model,
        and every later write leaves a file at least as new. sie-config's delta log relies on
        that after a restart (`sie_config/boot_log.py`).
        """
        stamped = []
        for file_name, modified in self._backend.list_modified(layout.MODELS_DIR).items():
            model_id = layout.model_id_from_file_name(file_name)
            if model_id is None:
                continue
            if modified is None:
                return None
            stamped.append((model_id, modified))
        stamped.sort(key=lambda item: item[1], reverse=True)
        if count <= 0:
            return []
        if len(stamped) > count:
            cut = stamped[count - 1][1]
            stamped = [item for item in stamped if item[1] >= cut]
        return stamped

    def load_all_models(self) -> dict[str, str]:
        """Every stored model as id -> YAML text, for the start-up restore.

        Empty files are skipped (the original does the same); files are read by their listed
        name, without id checks, so a store written by the original loads whatever it holds.
        """
        models: dict[str, str] = {}
        for model_id, file_name in sorted(self._model_files().items()):
            path = layout.model_path_for_file_name(file_name)
            text = self._decode_model(path, self._backend.read_bytes(path))
            if text is None or not text.strip():
                continue
            models[model_id] = text
        return models

    def commit_write(self, model_id: str, yaml_text: str, new_epoch: int) -> None:
        """Persist one creating write crash-consistently: epoch first, then the model.

        Why this order is safe is explained in the module docstring. Arguments are checked
        before any I/O so that a refused call changes nothing.
        """
        path = layout.model_path(model_id)
        epoch_data = _encode_epoch(new_epoch)
        model_data = yaml_text.encode("utf-8")
        self._backend.write_bytes(layout.EPOCH_FILE, epoch_data)
        self._backend.write_bytes(path, model_data)

    # --- idempotency ----------------------------------------------------------------------

    def put_idempotency(self, key: str, record: dict[str, Any]) -> None:
        """Persist a successful outcome under ``key`` so a retry after a restart replays it."""
        self._backend.write_bytes(
            layout.idempotency_path(key), encode_record(key, record, self._clock())
        )

    def get_idempotency(self, key: str, ttl_seconds: float) -> dict[str, Any] | None:
        """The record stored for ``key``, or None when absent, expired or not ours."""
        path = layout.idempotency_path(key)
        data = self._backend.read_bytes(path)
        if data is None:
            return None
        decoded = decode_record(data)
        if decoded is None:
            log.warning(
                "store: idempotency record %s/%s is unreadable; ignoring", self.location, path
            )
            return None
        stored_key, stored_at, record = decoded
        if stored_key != key or is_expired(stored_at, self._clock(), ttl_seconds):
            return None
        return record

    def prune_idempotency(self, ttl_seconds: float) -> int:
        """Delete expired (and unreadable) records; returns how many were deleted."""
        now = self._clock()
        deleted = 0
        for file_name in self._backend.list_names(layout.IDEMPOTENCY_DIR):
            if not layout.is_idempotency_file_name(file_name):
                continue
            path = f"{layout.IDEMPOTENCY_DIR}/{file_name}"
            data = self._backend.read_bytes(path)
            if data is None:
                continue
            decoded = decode_record(data)
            if decoded is not None and not is_expired(decoded[1], now, ttl_seconds):
                continue
            if self._backend.delete(path):
                deleted += 1
        return deleted

    # --- helpers --------------------------------------------------------------------------

    def _model_files(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for file_name in self._backend.list_names(layout.MODELS_DIR):
            model_id = layout.model_id_from_file_name(file_name)
            if model_id is not None:
                files[model_id] = file_name
        return files

    def _decode_model(self, path: str, data: bytes | None) -> str | None:
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("store: %s/%s is not UTF-8; treating it as absent", self.location, path)
            return None


def _encode_epoch(n: int) -> bytes:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"epoch must be a non-negative int, got {n!r}")
    return str(n).encode("ascii")


def _parse_epoch(data: bytes) -> int | None:
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not text.isdigit():
        return None
    return int(text)


def _parse_generation(data: bytes) -> str | None:
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if not text or not text.isprintable():
        return None
    return text

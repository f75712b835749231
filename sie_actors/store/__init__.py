"""Persistence of sie-config (epoch, generation, models, idempotency records).

Synchronous on purpose: file and object-store clients block, and the service runs these calls
in worker threads (``trio.to_thread.run_sync``) rather than pretending they are async.
"""

from __future__ import annotations

from sie_actors.store.config_store import ConfigStore
from sie_actors.store.errors import StoreBackendMissing, StoreUnavailable

__all__ = ["ConfigStore", "StoreBackendMissing", "StoreUnavailable"]

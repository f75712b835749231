"""sie-worker: one bundle's config mirror, its bundle_config_hash, and its /ws/status stream."""

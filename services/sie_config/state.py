"""sie-config's published state: one immutable value, replaced whole by the writer.

Readers (every GET) take `cell.current` once and work on that value, so they never see a write
half-applied and never wait for the writer. The serialized bodies of hot read endpoints are built
lazily once per state (`cached_property` on a frozen dataclass), so a burst of reads after a write
pays the serialization once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Mapping

import orjson

from sie_actors.domain.jsonbytes import dumps_kept
from sie_actors.domain.registry import ModelEntry, Registry
from sie_actors.domain.snapshot import (SNAPSHOT_VERSION, SOURCE_API, SOURCE_FILESYSTEM,
                                        bundle_summary, export_model_entry, model_stub_yaml,
                                        model_summary)


@dataclass(frozen=True, eq=False)
class ConfigState:
    registry: Registry
    raw_yaml: Mapping[str, str]  # canonical model id -> the document GET returns verbatim
    api_models: frozenset[str]  # canonical ids created or appended through the API
    epoch: int
    generation: str

    def with_write(self, registry: Registry, model_id: str, yaml_text: str,
                   epoch: int) -> "ConfigState":
        raw = dict(self.raw_yaml)
        raw[model_id] = yaml_text
        return replace(self, registry=registry, raw_yaml=raw,
                       api_models=self.api_models | {model_id}, epoch=epoch)

    def with_epoch(self, epoch: int) -> "ConfigState":
        """Same models, another epoch: the store's, after a failed write already persisted it."""
        return replace(self, epoch=epoch)

    # ---- the bodies of read endpoints, built once per state --------------------------------
    @cached_property
    def models_body(self) -> bytes:
        return orjson.dumps({"models": [
            model_summary(entry, SOURCE_API if entry.model_id in self.api_models
                          else SOURCE_FILESYSTEM)
            for entry in self.registry.list_models()]})

    @cached_property
    def bundles_body(self) -> bytes:
        return orjson.dumps({"bundles": [bundle_summary(b, SOURCE_FILESYSTEM)
                                         for b in self.registry.list_bundles()]})

    @cached_property
    def epoch_body(self) -> bytes:
        return orjson.dumps({"epoch": self.epoch, "bundles_hash": self.registry.bundles_hash,
                             "generation": self.generation,
                             "bundle_config_hashes": self.registry.bundle_config_hashes()})

    def deltas_body(self, since: int, deltas: list[bytes]) -> bytes:
        """`GET /v1/configs/deltas`: the epoch report (the fields of `epoch_body`, so the mirror
        can check its result), ``since``, and the deltas as published, joined as they are."""
        return (self.epoch_body[:-1] + b',"since":' + str(since).encode() + b',"deltas":['
                + b",".join(deltas) + b"]}")

    def model_yaml(self, entry: ModelEntry) -> str:
        """The stored or filesystem document; a registry stub only if neither exists."""
        text = self.raw_yaml.get(entry.model_id)
        if text:
            return text
        return model_stub_yaml(entry.model_id, entry.bundles, SOURCE_FILESYSTEM)

    def export_entry(self, entry: ModelEntry) -> dict:
        return export_model_entry(entry, self.raw_yaml.get(entry.model_id) or None)

    @cached_property
    def _export_entries(self) -> list[bytes]:
        # one entry per model, cached for the state's life: right-sized (see jsonbytes)
        return [dumps_kept(self.export_entry(e)) for e in self.registry.list_models()]

    def export_body(self, generated_at: str, bundle_id: str | None = None) -> bytes:
        """The gateway bootstrap snapshot; with `bundle_id`, only that bundle's models plus the
        bundle itself and its hash (the worker bootstrap, CONTRACT §2 item 4)."""
        head: dict = {"snapshot_version": SNAPSHOT_VERSION, "epoch": self.epoch,
                      "generation": self.generation, "generated_at": generated_at}
        if bundle_id is None:
            entries = self._export_entries
        else:
            bundle = self.registry.get_bundle(bundle_id)
            head["bundle"] = {"name": bundle.name, "priority": bundle.priority,
                              "adapters": list(bundle.adapters)}
            head["bundle_config_hash"] = self.registry.bundle_config_hash(bundle_id)
            entries = [orjson.dumps(self.export_entry(e))
                       for e in self.registry.models_in_bundle(bundle_id)]
        prefix = orjson.dumps(head)[:-1]
        return prefix + b',"models":[' + b",".join(entries) + b"]}"

"""What the registry knows about one model, and what loading noticed about the inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from .model_config import canonical_profile, dump_model_yaml


@dataclass(frozen=True)
class ModelEntry:
    """One model as the registry knows it.

    ``config`` is the whole model document (what is stored, exported and sent in deltas);
    ``profiles`` is its ``profiles`` mapping. Both are shared between snapshots: never
    mutate them, build a new entry instead. ``bundles`` is in routing preference order.
    """

    model_id: str
    config: Mapping[str, Any]
    profiles: Mapping[str, Mapping[str, Any]]
    modules: frozenset[str]
    bundles: tuple[str, ...]
    profile_modules: Mapping[str, str | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    profile_fragments: Mapping[str, bytes] = field(
        default_factory=dict, repr=False, compare=False
    )

    def profile_names(self) -> list[str]:
        """Sorted profile names, as every list endpoint shows them."""
        return sorted(self.profiles)

    @cached_property
    def raw_yaml(self) -> str:
        """``dump_model_yaml(config)``, made once per entry.

        Entries are shared by every later snapshot, so the store write, the delta and every
        export of this version of the model reuse one serialization.
        """
        return dump_model_yaml(self.config)

    def canonical_profile(self, name: str) -> dict[str, Any]:
        return canonical_profile(self.profiles[name])


@dataclass(frozen=True)
class LoadIssue:
    """Something ``Registry.build`` noticed in a baseline model; the loader logs these.

    ``kind``: ``skipped`` (file not loaded), ``duplicate`` (replaced an earlier file with the
    same id, case-insensitively) or ``unrouteable`` (loaded, but some adapter modules are in
    no bundle).
    """

    index: int
    model_id: str | None
    kind: str
    message: str

"""Which catalogued models have weights on this machine: one answer for `sie weights list` and
for `sie-cluster up`'s banner, so both say the same thing the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import ModelLoadFailed
from .weight_packages import CATALOG, WeightPackage
from .weights import resolve_weights


@dataclass(frozen=True)
class WeightsStatus:
    model: str
    package: str
    source: str | None      # None: not on this machine
    path: Path | None

    @property
    def present(self) -> bool:
        return self.source is not None

    def line(self) -> str:
        if self.present:
            return f"{self.model}  present ({self.source}: {self.path})"
        return f"{self.model}  missing: run `sie weights pull {self.model}`"


def catalog_status(environ: Mapping[str, str] | None = None,
                   catalog: tuple[WeightPackage, ...] = CATALOG) -> list[WeightsStatus]:
    rows = []
    for package in catalog:
        try:
            loc = resolve_weights({"hf_id": package.hf_id}, environ=environ, catalog=catalog)
            rows.append(WeightsStatus(package.hf_id, package.requirement, loc.source, loc.path))
        except ModelLoadFailed:
            rows.append(WeightsStatus(package.hf_id, package.requirement, None, None))
    return rows

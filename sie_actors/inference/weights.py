"""Find a model's weights on this machine; never download them.

Order: the config's ``weights_path``; else its ``hf_id`` in the Hugging Face cache (offline);
else an installed weight package from the catalog. ``weights_path`` is authoritative: if the
config names a folder and it is not there, we fail rather than serve other files under that
name. Every failure names each place looked at, so the operator can fix the right one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from . import hf_cache
from .errors import ModelLoadFailed
from .weight_packages import CATALOG, WeightPackage, find_package, installed_dir

# A folder counts as holding a model when it has the transformers config; the adapter checks the
# files it needs itself and names any that are missing.
MARKER = "config.json"


@dataclass(frozen=True)
class WeightsLocation:
    path: Path
    source: str   # "weights_path", "hf_cache" or "package:<distribution>"


def _has_model(folder: Path | None) -> bool:
    return folder is not None and (folder / MARKER).is_file()


def resolve_weights(config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None,
                    catalog: tuple[WeightPackage, ...] = CATALOG,
                    package_dir: Callable[[WeightPackage], Path | None] = installed_dir,
                    ) -> WeightsLocation:
    env = os.environ if environ is None else environ
    model = config.get("sie_id") or config.get("hf_id") or "?"
    weights_path = config.get("weights_path")
    if weights_path:
        folder = Path(str(weights_path)).expanduser()
        if _has_model(folder):
            return WeightsLocation(folder, "weights_path")
        raise ModelLoadFailed(
            f"weights for {model!r} not found: weights_path {str(folder)!r} "
            f"{'has no ' + MARKER if folder.is_dir() else 'does not exist'}")
    hf_id = config.get("hf_id")
    if not isinstance(hf_id, str) or not hf_id:
        raise ModelLoadFailed(f"weights for {model!r} not found: the config has neither "
                              "weights_path nor hf_id")
    looked: list[str] = []
    hub = hf_cache.hub_cache_dir(env)
    revision = config.get("hf_revision") or None
    snap = hf_cache.snapshot_dir(hub, hf_id, revision)
    if _has_model(snap):
        return WeightsLocation(snap, "hf_cache")
    looked.append(f"the Hugging Face cache {str(hf_cache.repo_dir(hub, hf_id))!r} "
                  f"(revision {revision or 'main'})")
    package = find_package(hf_id, catalog)
    if package is not None:
        folder = package_dir(package)
        if _has_model(folder):
            return WeightsLocation(folder, f"package:{package.distribution}")
        looked.append(f"the installed package {package.distribution!r} (not installed)")
        hint = f"; run `sie weights pull {hf_id}`"
    else:
        looked.append("the weight-package catalog (no package ships this model)")
        hint = "; put the files in the Hugging Face cache or set weights_path"
    raise ModelLoadFailed(f"weights for {model!r} ({hf_id}) not found; looked in "
                          + ", ".join(looked) + hint)

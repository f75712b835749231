"""The Hugging Face hub cache layout, read (offline) and written (by ``sie weights pull``).

We read and write the layout ourselves instead of calling ``huggingface_hub`` because that
library's purpose is downloading, which the services must never do, and because it would be a
dependency for three path rules: the cache root (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``), the repo folder
``models--{org}--{name}``, and ``refs/{revision}`` naming a folder under ``snapshots/``. A cache
filled by ``huggingface_hub`` is read the same way, and one we fill is readable by it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hub_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def repo_dir(hub: Path, hf_id: str) -> Path:
    return hub / ("models--" + hf_id.replace("/", "--"))


def snapshot_dir(hub: Path, hf_id: str, revision: str | None = None) -> Path | None:
    """The snapshot folder for ``revision`` (default ``main``), or ``None`` if it is not cached.

    A 40-hex revision is a commit and names the folder itself; anything else is a ref. With the
    default revision and no ``refs/main``, a cache holding exactly one snapshot is used (a copy
    made by hand often has no refs).
    """
    repo = repo_dir(hub, hf_id)
    rev = revision or "main"
    if _COMMIT.match(rev):
        candidate = repo / "snapshots" / rev
        return candidate if candidate.is_dir() else None
    ref = repo / "refs" / rev
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        candidate = repo / "snapshots" / commit
        return candidate if commit and candidate.is_dir() else None
    if revision is None:
        snaps = repo / "snapshots"
        found = [p for p in snaps.iterdir() if p.is_dir()] if snaps.is_dir() else []
        if len(found) == 1:
            return found[0]
    return None

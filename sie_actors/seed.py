"""Loading the filesystem seed (bundle and model YAML directories) that every service starts from.

This is the I/O half of the registry: it reads files and hands parsed values to the pure domain.
A bad file is logged and skipped, never fatal, because one typo in a catalog must not take a
control plane down (the original behaves the same). Only `*.yaml` files count, in name order, so
load order (which breaks priority ties) is stable across machines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from sie_actors.domain.errors import DomainError
from sie_actors.domain.fields import unknown_bundle_field_warnings, unknown_field_warnings
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.domain.registry import Bundle, Registry, parse_bundle_yaml
from sie_actors.settings import Setting
from sie_actors.settings import path as path_setting

log = logging.getLogger("sie_actors.seed")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_dir(kind: str) -> Path:
    """`/app/<kind>` in images; the project's own folder in a source checkout."""
    image_dir = Path("/app") / kind
    return image_dir if image_dir.is_dir() else PROJECT_ROOT / kind


# The catalog folders as sie-config and the workers read them (the gateway's are optional).
BUNDLES_DIR = Setting(
    ("SIE_BUNDLES_DIR",), None, "bundle YAML", path_setting, unset=lambda env: default_dir("bundles"),
    shown="`/app/bundles`, else this repository's `bundles/`")
MODELS_DIR = Setting(
    ("SIE_MODELS_DIR",), None, "baseline model YAML", path_setting, unset=lambda env: default_dir("models"),
    shown="`/app/models`, else this repository's `models/`")


@dataclass(frozen=True)
class Seed:
    bundles: tuple[Bundle, ...]
    model_configs: tuple[dict, ...]
    raw_yaml: dict[str, str]  # model id (as written in its file) -> the file's text

    def registry(self) -> Registry:
        return Registry.build(self.bundles, self.model_configs)


def load_bundles(directory: Path | None) -> tuple[Bundle, ...]:
    if directory is None or not directory.is_dir():
        if directory is not None:
            log.warning("bundles directory %s does not exist; no bundles loaded", directory)
        return ()
    bundles: dict[str, Bundle] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            text = path.read_text(encoding="utf-8")
            bundle = parse_bundle_yaml(text, path.stem)
        except (OSError, UnicodeDecodeError, DomainError, yaml.YAMLError) as exc:
            log.error("skipping bundle file %s: %s", path, exc)
            continue
        for warning in unknown_bundle_field_warnings(yaml.safe_load(text)):
            log.warning("bundle file %s: %s", path, warning)
        bundles.pop(bundle.name, None)  # a later file with the same name wins
        bundles[bundle.name] = bundle
    return tuple(bundles.values())


def load_models(directory: Path | None) -> tuple[tuple[dict, ...], dict[str, str]]:
    if directory is None or not directory.is_dir():
        if directory is not None:
            log.warning("models directory %s does not exist; no models loaded", directory)
        return (), {}
    configs: list[dict] = []
    raw: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            text = path.read_text(encoding="utf-8")
            config = parse_model_yaml(text)
        except (OSError, UnicodeDecodeError, DomainError) as exc:
            log.error("skipping model file %s: %s", path, exc)
            continue
        model_id = config.get("sie_id") or config.get("name")
        if not isinstance(model_id, str) or not model_id:
            log.warning("skipping model file %s: no sie_id", path)
            continue
        for warning in unknown_field_warnings(config):
            log.warning("model file %s: %s", path, warning)
        config = dict(config)
        config["sie_id"] = model_id
        configs.append(config)
        raw[model_id] = text
    return tuple(configs), raw


def load_seed(bundles_dir: Path | None, models_dir: Path | None) -> Seed:
    configs, raw = load_models(models_dir)
    return Seed(load_bundles(bundles_dir), configs, raw)

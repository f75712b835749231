"""The one append path: how a model document becomes (or joins) a registry model.

Pure planning over a read-only view of a snapshot (``Registry`` or its builder): the rules
of reference §2.3 in order, the merge of the stored document, and the hash fragments the
new snapshot will need. Nothing is applied here; ``Registry.apply`` installs a plan.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from .bundle import Bundle
from .entry import ModelEntry
from .errors import ValidationFailed
from .fields import unknown_field_warnings
from .hashing import model_entry_bytes, profile_config_bytes
from .model_config import (
    ValidatedModel,
    canonical_profile,
    dump_model_yaml,
    ensure_json_compatible,
    read_filesystem_model,
    validate_model_config,
)



class PlanningView(Protocol):
    """What planning reads of a snapshot. ``Registry`` provides it, and so does the builder that
    ``Registry.append_many`` plans against, so one set of rules serves both."""

    @property
    def all_adapters(self) -> frozenset[str]: ...

    def list_bundles(self) -> tuple[Bundle, ...]: ...

    def get_bundle(self, name: object) -> Bundle | None: ...

    def get_model(self, model_id: object) -> ModelEntry | None: ...


@dataclass(frozen=True)
class AppendPlan:
    """The validated outcome of appending one model document, before it is applied.

    ``model_id`` is the canonical id (an existing model's spelling wins, CONTRACT §2 item 14).
    ``merged_config`` is the whole model document after the write (CONTRACT §2 item 10: an
    append to a filesystem model keeps the filesystem profiles). ``previous_config`` is the
    document before the write (``None`` for a new model); the 409 checks compare against it.
    """

    model_id: str
    created_profiles: tuple[str, ...]
    skipped_profiles: tuple[str, ...]
    affected_bundles: tuple[str, ...]
    is_new_model: bool
    merged_config: Mapping[str, Any]
    request: Mapping[str, Any] = field(repr=False)
    previous_config: Mapping[str, Any] | None = field(repr=False, default=None)
    entry: ModelEntry | None = field(repr=False, default=None, compare=False)
    fragments: Mapping[str, bytes] = field(repr=False, default_factory=dict, compare=False)
    base: Any = field(repr=False, default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def creates(self) -> bool:
        """True when the write changes anything (else it is an idempotent replay)."""
        return bool(self.created_profiles)

    @property
    def merged_yaml(self) -> str:
        """The whole model document as YAML: the store file and the delta's ``model_config``."""
        if self.entry is not None:
            return self.entry.raw_yaml
        return dump_model_yaml(self.merged_config)

    @property
    def routable_bundles_by_profile(self) -> dict[str, list[str]]:
        """POST response field: the model-level bundle list for each created profile (§3.4)."""
        return {name: list(self.affected_bundles) for name in self.created_profiles}


def bundles_for(view: PlanningView, modules: frozenset[str]) -> tuple[str, ...]:
    """Bundles owning any of ``modules``, by priority; ties keep bundle load order."""
    return tuple(b.name for b in view.list_bundles() if not b.adapter_set.isdisjoint(modules))


def _fragment(entry: ModelEntry, bundle: Bundle) -> bytes:
    """The model's hash item for one bundle: profiles of other bundles' modules left out."""
    parts = []
    for name in sorted(entry.profiles):
        module = entry.profile_modules.get(name)
        if module is None or module in bundle.adapter_set:
            parts.append((name, entry.profile_fragments[name]))
    return model_entry_bytes(entry.model_id, parts)


def _fragments(view: PlanningView, entry: ModelEntry) -> dict[str, bytes]:
    bundles = {b.name: b for b in view.list_bundles()}
    return {name: _fragment(entry, bundles[name]) for name in entry.bundles}


def _merge_existing(
    existing: ModelEntry, request: Mapping[str, Any], vm: ValidatedModel, created: list[str]
) -> dict[str, Any]:
    """Existing document + created profiles; request top-level keys only fill gaps."""
    merged: dict[str, Any] = {}
    if existing.config.get("sie_id") != existing.model_id:
        merged["sie_id"] = existing.model_id  # a `name:`-only baseline file gains its sie_id
    for key, value in existing.config.items():
        if key != "sie_id" or "sie_id" not in merged:
            merged[key] = value
    for key, value in request.items():
        if key != "profiles" and key not in merged:
            merged[key] = value
    profiles = dict(existing.profiles)
    for name in created:
        profiles[name] = vm.profiles[name]
    merged["profiles"] = profiles
    return merged


MAX_SUGGESTED_ADAPTERS = 5

# What a user who wanted to change a profile can do instead (the original's sentence comes first).
CHANGED_PROFILE_HINT = (
    "To use the new settings, add them as a new profile (another name under `profiles`), or "
    "under a new model id; on a local `sie-cluster`, `sie-cluster up --fresh` starts again from "
    "an empty store."
)


def unknown_adapters_message(unknown: list[str], known: frozenset[str] | set[str]) -> str:
    """The 422 for modules no bundle lists, naming the ones that exist, closest first.

    Starts with the original's exact sentence (clients match on it); what follows tells the
    user what they could have meant and where the full list is.
    """
    text = "Adapter(s) not in any known bundle: " + ", ".join(unknown)
    if not known:
        return text + ". No bundle lists any adapter."

    def distance(module: str) -> tuple[float, str]:
        best = max(difflib.SequenceMatcher(None, u, module).ratio() for u in unknown)
        return (-best, module)

    ranked = sorted(known, key=distance)
    shown = ranked[:MAX_SUGGESTED_ADAPTERS]
    more = len(ranked) - len(shown)
    suffix = f" (and {more} more)" if more else ""
    return (f"{text}. Known adapters, closest first: {', '.join(shown)}{suffix}. "
            "See `sie bundles list` or GET /v1/configs/bundles/{bundle_id} for each bundle's "
            "adapters.")


def plan_append_on(view: PlanningView, config: object, base: Any) -> AppendPlan:
    """Reference §2.3 rules in order; raises only ``DomainError``."""
    vm = validate_model_config(config)
    assert isinstance(config, Mapping)
    unknown = sorted(vm.module_set() - view.all_adapters)
    if unknown:
        raise ValidationFailed(unknown_adapters_message(unknown, view.all_adapters))
    existing = view.get_model(vm.model_id)
    created: list[str] = []
    skipped: list[str] = []
    if existing is None:
        model_id = vm.model_id
        created = list(vm.profiles)
        modules = vm.module_set()
    else:
        model_id = existing.model_id
        for name, profile in vm.profiles.items():
            if name not in existing.profiles:
                created.append(name)
            elif canonical_profile(profile) != canonical_profile(existing.profiles[name]):
                raise ValidationFailed(
                    f"Profile '{name}' on model '{model_id}' already exists with different "
                    "config (append-only -- cannot modify). " + CHANGED_PROFILE_HINT
                )
            else:
                skipped.append(name)
        modules = existing.modules | vm.module_set(created)
    bundles = bundles_for(view, modules)
    if created and not bundles:
        if existing is None:
            raise ValidationFailed(
                f"Model '{model_id}' does not resolve to any known bundle. Every new model "
                "must contribute at least one profile whose `adapter_path` module appears in "
                "a bundle's adapters list. (Profiles that only `extends` another profile do "
                "not count.)"
            )
        raise ValidationFailed(
            f"Appending profile(s) {created!r} to model '{model_id}' does not affect any "
            "bundle. Ensure at least one new profile has an `adapter_path` that a known "
            "bundle owns."
        )
    common = dict(
        model_id=model_id,
        created_profiles=tuple(created),
        skipped_profiles=tuple(skipped),
        affected_bundles=bundles,
        is_new_model=existing is None,
        request=config,
        previous_config=None if existing is None else existing.config,
        base=base,
        warnings=tuple(unknown_field_warnings(config)),
    )
    if not created:
        assert existing is not None
        return AppendPlan(merged_config=existing.config, **common)

    # Checks the original did not make (it crashed later instead): JSON-representable
    # document, hashable profiles.
    ensure_json_compatible(config)
    fragments = {} if existing is None else dict(existing.profile_fragments)
    for name in created:
        fragments[name] = profile_config_bytes(name, vm.profiles[name])
    if existing is None:
        merged = dict(config)
        merged["profiles"] = dict(vm.profiles)
        profile_modules = dict(vm.modules)
    else:
        merged = _merge_existing(existing, config, vm, created)
        profile_modules = dict(existing.profile_modules)
        profile_modules.update((name, vm.modules[name]) for name in created)
    entry = ModelEntry(
        model_id, merged, merged["profiles"], modules, bundles, profile_modules, fragments
    )
    return AppendPlan(
        merged_config=merged, entry=entry, fragments=_fragments(view, entry), **common
    )


def load_filesystem_model(view: PlanningView, config: object) -> tuple[ModelEntry, dict[str, bytes]]:
    """Baseline-file semantics (§3.1): no routability check; unrouteable models stay listed."""
    vm = read_filesystem_model(config)
    assert isinstance(config, Mapping)
    ensure_json_compatible(config)
    fragments = {name: profile_config_bytes(name, p) for name, p in vm.profiles.items()}
    modules = vm.module_set()
    document = dict(config)
    profiles = dict(vm.profiles)
    if "profiles" in document:
        document["profiles"] = profiles
    entry = ModelEntry(
        vm.model_id,
        document,
        profiles,
        modules,
        bundles_for(view, modules),
        dict(vm.modules),
        fragments,
    )
    return entry, _fragments(view, entry)

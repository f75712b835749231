"""The registry: an immutable snapshot of bundles and models, and the one append path.

Every service holds a ``Registry`` and replaces it whole on change, so readers never see a
half-applied write and never lock. sie-config writes, store restore, gateway bootstrap and
deltas, and worker deltas all go through ``plan_append`` + ``apply``, so the three services
cannot drift apart in what they accept or in the hashes they compute.

Cost model: a snapshot shares its model entries and cached hash fragments with its parent.
``apply`` copies the two top-level containers (O(n) pointer copies, ~0.1 ms at 10k models)
and serializes only the model it touches; hashes are computed lazily, once per snapshot.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

from .bundle import Bundle, bundle_from_mapping, parse_bundle_yaml
from .bundle_index import BundleIndex, BundleIndexBuilder
from .conflicts import check_content_conflicts, content_conflicts
from .delta import dump_model_yaml
from .errors import DomainError, ValidationFailed
from .hashing import bundles_hash as _bundles_hash
from .hashing import model_entry_bytes, profile_config_bytes
from .ids import canonical_lower
from .model_config import (
    ValidatedModel,
    canonical_profile,
    ensure_json_compatible,
    read_filesystem_model,
    validate_model_config,
)

__all__ = [
    "AppendPlan",
    "Bundle",
    "LoadIssue",
    "ModelEntry",
    "Registry",
    "bundle_from_mapping",
    "check_content_conflicts",
    "content_conflicts",
    "parse_bundle_yaml",
]


@dataclass(frozen=True)
class ModelEntry:
    """One model as the registry knows it.

    ``config`` is the whole model document (what is stored, exported and sent in deltas);
    ``profiles`` is its ``profiles`` mapping. Both are shared between snapshots: never
    mutate them, build a new entry instead. ``bundles`` is in routing preference order.
    """

    model_id: str
    config: Mapping[str, Any]
    profiles: Mapping[str, Mapping[str, Any]]
    modules: frozenset[str]
    bundles: tuple[str, ...]
    profile_modules: Mapping[str, str | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    profile_fragments: Mapping[str, bytes] = field(
        default_factory=dict, repr=False, compare=False
    )

    def profile_names(self) -> list[str]:
        """Sorted profile names, as every list endpoint shows them."""
        return sorted(self.profiles)

    @cached_property
    def raw_yaml(self) -> str:
        """``dump_model_yaml(config)``, made once per entry.

        Entries are shared by every later snapshot, so the store write, the delta and every
        export of this version of the model reuse one serialization.
        """
        return dump_model_yaml(self.config)

    def canonical_profile(self, name: str) -> dict[str, Any]:
        return canonical_profile(self.profiles[name])


@dataclass(frozen=True)
class LoadIssue:
    """Something ``Registry.build`` noticed in a baseline model; the loader logs these.

    ``kind``: ``skipped`` (file not loaded), ``duplicate`` (replaced an earlier file with the
    same id, case-insensitively) or ``unrouteable`` (loaded, but some adapter modules are in
    no bundle).
    """

    index: int
    model_id: str | None
    kind: str
    message: str


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


# --------------------------------------------------------------------------- planning


def _bundles_for(view: Any, modules: frozenset[str]) -> tuple[str, ...]:
    """Bundles owning any of ``modules``, by priority; ties keep bundle load order."""
    return tuple(b.name for b in view._by_priority if not b.adapter_set.isdisjoint(modules))


def _fragment(entry: ModelEntry, bundle: Bundle) -> bytes:
    """The model's hash item for one bundle: profiles of other bundles' modules left out."""
    parts = []
    for name in sorted(entry.profiles):
        module = entry.profile_modules.get(name)
        if module is None or module in bundle.adapter_set:
            parts.append((name, entry.profile_fragments[name]))
    return model_entry_bytes(entry.model_id, parts)


def _fragments(view: Any, entry: ModelEntry) -> dict[str, bytes]:
    return {name: _fragment(entry, view._bundles[name]) for name in entry.bundles}


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


def _plan_append(view: Any, config: object, base: Any) -> AppendPlan:
    """Reference §2.3 rules in order; raises only ``DomainError``."""
    vm = validate_model_config(config)
    assert isinstance(config, Mapping)
    unknown = sorted(vm.module_set() - view._all_adapters)
    if unknown:
        raise ValidationFailed("Adapter(s) not in any known bundle: " + ", ".join(unknown))
    existing: ModelEntry | None = view._models.get(canonical_lower(vm.model_id))
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
                    "config (append-only -- cannot modify)"
                )
            else:
                skipped.append(name)
        modules = existing.modules | vm.module_set(created)
    bundles = _bundles_for(view, modules)
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


def _load_filesystem_model(view: Any, config: object) -> tuple[ModelEntry, dict[str, bytes]]:
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
        _bundles_for(view, modules),
        dict(vm.modules),
        fragments,
    )
    return entry, _fragments(view, entry)


# --------------------------------------------------------------------------- snapshot


class _Builder:
    """Mutable working copy used to make one new snapshot (or many appends in one go)."""

    def __init__(self, base: Registry) -> None:
        self._base = base
        self._bundles = base._bundles
        self._by_priority = base._by_priority
        self._all_adapters = base._all_adapters
        self._models = dict(base._models)
        self._order = list(base._order)
        self._touched: dict[str, BundleIndexBuilder] = {}

    def _index(self, bundle: str) -> BundleIndexBuilder:
        builder = self._touched.get(bundle)
        if builder is None:
            builder = self._touched[bundle] = self._base._indexes[bundle].evolve()
        return builder

    def install(self, entry: ModelEntry, fragments: Mapping[str, bytes]) -> ModelEntry | None:
        """Put ``entry`` in place of any model with the same id (case-insensitively)."""
        key = canonical_lower(entry.model_id)
        old = self._models.get(key)
        if old is not None:
            for bundle in old.bundles:
                if old.model_id != entry.model_id or bundle not in fragments:
                    self._index(bundle).discard(old.model_id)
            if old.model_id != entry.model_id:
                del self._order[bisect.bisect_left(self._order, old.model_id)]
                bisect.insort(self._order, entry.model_id)
        else:
            bisect.insort(self._order, entry.model_id)
        self._models[key] = entry
        for bundle, fragment in fragments.items():
            self._index(bundle).put(entry.model_id, fragment)
        return old

    def freeze(self, load_issues: tuple[LoadIssue, ...]) -> Registry:
        indexes = dict(self._base._indexes)
        for bundle, builder in self._touched.items():
            indexes[bundle] = builder.freeze()
        return Registry(
            _bundles=self._bundles,
            _by_priority=self._by_priority,
            _all_adapters=self._all_adapters,
            _models=self._models,
            _order=self._order,
            _indexes=indexes,
            load_issues=load_issues,
        )


@dataclass(frozen=True, eq=False, repr=False)
class Registry:
    """Immutable snapshot of bundles and models. Build with ``Registry.build``.

    Model lookups are case-insensitive (CONTRACT §2 item 14); bundle lookups are exact.
    """

    _bundles: Mapping[str, Bundle]
    _by_priority: tuple[Bundle, ...]
    _all_adapters: frozenset[str]
    _models: Mapping[str, ModelEntry]
    _order: Sequence[str]
    _indexes: Mapping[str, BundleIndex]
    load_issues: tuple[LoadIssue, ...] = ()
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Registry(models={len(self._models)}, bundles={list(self._bundles)})"

    # ---- construction

    @classmethod
    def empty(cls, bundles: Sequence[Bundle] = ()) -> Registry:
        """A registry with bundles and no models."""
        by_name: dict[str, Bundle] = {}
        for bundle in bundles:
            by_name[bundle.name] = bundle  # a duplicate name replaces, keeping its position
        by_priority = tuple(sorted(by_name.values(), key=lambda b: b.priority))
        adapters = frozenset().union(*(b.adapter_set for b in by_name.values()))
        return cls(
            _bundles=by_name,
            _by_priority=by_priority,
            _all_adapters=adapters,
            _models={},
            _order=[],
            _indexes={name: BundleIndex.empty() for name in by_name},
        )

    @classmethod
    def build(cls, bundles: Sequence[Bundle], model_configs: Iterable[object]) -> Registry:
        """Load baseline models leniently, as the original's filesystem loader does.

        A bad document is skipped and reported in ``load_issues``; models whose modules no
        bundle lists are kept (with fewer or no bundles) and reported as ``unrouteable``.
        A later document with the same id replaces an earlier one. Takes ownership of the
        configs: do not mutate them afterwards.
        """
        builder = _Builder(cls.empty(bundles))
        issues: list[LoadIssue] = []
        for index, config in enumerate(model_configs):
            try:
                entry, fragments = _load_filesystem_model(builder, config)
            except DomainError as exc:
                guess = None
                if isinstance(config, Mapping):
                    name = config.get("sie_id") or config.get("name")
                    guess = name if isinstance(name, str) else None
                issues.append(LoadIssue(index, guess, "skipped", exc.message))
                continue
            if builder.install(entry, fragments) is not None:
                issues.append(
                    LoadIssue(index, entry.model_id, "duplicate", "replaced an earlier model")
                )
            missing = sorted(entry.modules - builder._all_adapters)
            if missing:
                issues.append(
                    LoadIssue(
                        index,
                        entry.model_id,
                        "unrouteable",
                        "Adapter(s) not in any known bundle: " + ", ".join(missing),
                    )
                )
        return builder.freeze(tuple(issues))

    def with_bundles(self, bundles: Sequence[Bundle]) -> Registry:
        """The same models re-routed over another bundle set (a gateway's bundle refresh)."""
        return Registry.build(bundles, [entry.config for entry in self.list_models()])

    # ---- the append path

    def plan_append(self, config: object) -> AppendPlan:
        """Validate appending ``config`` (a parsed model document); changes nothing.

        Raises ``InvalidModelId`` (400) or ``ValidationFailed`` (422); nothing else.
        Takes ownership of ``config``: do not mutate it afterwards.
        """
        return _plan_append(self, config, self)

    def apply(self, plan: AppendPlan) -> Registry:
        """The snapshot after ``plan``; ``self`` when the plan creates nothing.

        A plan made against another snapshot is re-planned here first (and may then raise),
        so a stale plan can never corrupt the registry.
        """
        if plan.base is not self:
            plan = self.plan_append(plan.request)
        if plan.entry is None:
            return self
        builder = _Builder(self)
        builder.install(plan.entry, plan.fragments)
        return builder.freeze(self.load_issues)

    def append(self, config: object) -> tuple[Registry, AppendPlan]:
        """``plan_append`` then ``apply``."""
        plan = self.plan_append(config)
        return self.apply(plan), plan

    def append_many(
        self, configs: Iterable[object]
    ) -> tuple[Registry, list[AppendPlan | DomainError]]:
        """Append documents in order with the same rules, making one snapshot at the end.

        For bootstraps and restores: a bad document yields its ``DomainError`` in the result
        list and does not stop the others. The returned plans are informational (their
        ``base`` is not a public snapshot).
        """
        builder = _Builder(self)
        results: list[AppendPlan | DomainError] = []
        for config in configs:
            try:
                plan = _plan_append(builder, config, None)
            except DomainError as exc:
                results.append(exc)
                continue
            if plan.entry is not None:
                builder.install(plan.entry, plan.fragments)
            results.append(plan)
        return builder.freeze(self.load_issues), results

    # ---- reads

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model_id: object) -> bool:
        return self.get_model(model_id) is not None

    def get_model(self, model_id: object) -> ModelEntry | None:
        """Case-insensitive lookup; ``None`` for unknown (or non-string) ids."""
        if not isinstance(model_id, str):
            return None
        return self._models.get(canonical_lower(model_id))

    def list_models(self) -> tuple[ModelEntry, ...]:
        """All models sorted by id (Python string order)."""
        cached = self._memo.get("models")
        if cached is None:
            cached = self._memo["models"] = tuple(
                self._models[canonical_lower(model_id)] for model_id in self._order
            )
        return cached

    def list_bundles(self) -> tuple[Bundle, ...]:
        """Bundles by ascending priority; ties keep load order."""
        return self._by_priority

    def get_bundle(self, name: object) -> Bundle | None:
        """Exact-case lookup (bundle ids are exact everywhere)."""
        return self._bundles.get(name) if isinstance(name, str) else None

    @property
    def all_adapters(self) -> frozenset[str]:
        return self._all_adapters

    @property
    def bundles_hash(self) -> str:
        """§4.2 fingerprint of the bundle set; ``""`` without bundles."""
        cached = self._memo.get("bundles_hash")
        if cached is None:
            cached = self._memo["bundles_hash"] = _bundles_hash(self._bundles.values())
        return cached

    def bundle_config_hash(self, bundle_id: str) -> str:
        """§4.3 fingerprint of one bundle's models; ``""`` for an unknown or empty bundle."""
        index = self._indexes.get(bundle_id)
        return "" if index is None else index.hexdigest()

    def bundle_config_hashes(self) -> dict[str, str]:
        """Every bundle's ``bundle_config_hash``, in bundle priority order."""
        return {b.name: self.bundle_config_hash(b.name) for b in self._by_priority}

    def models_in_bundle(self, bundle_id: str) -> tuple[ModelEntry, ...]:
        """Models routed to ``bundle_id``, sorted by id (the order the hash uses)."""
        index = self._indexes.get(bundle_id)
        if index is None:
            return ()
        return tuple(self._models[canonical_lower(n)] for n in index.names())

    def unrouteable_models(self) -> dict[str, list[str]]:
        """Per model, the adapter modules no bundle lists (the original logs these at load)."""
        result = {}
        for entry in self.list_models():
            missing = entry.modules - self._all_adapters
            if missing:
                result[entry.model_id] = sorted(missing)
        return result

    def filter_to_bundle(self, bundle_id: str) -> Registry:
        """A worker's registry: every bundle, but only the models of ``bundle_id``.

        Bundles are kept so that deltas validate on the worker exactly as on sie-config;
        ``bundle_config_hash(bundle_id)`` equals this registry's. An unknown bundle gives a
        registry without models.
        """
        index = self._indexes.get(bundle_id)
        names = list(index.names()) if index is not None else []
        members = set(names)
        models = {canonical_lower(n): self._models[canonical_lower(n)] for n in names}
        indexes: dict[str, BundleIndex] = {}
        for name, other in self._indexes.items():
            if name == bundle_id:
                indexes[name] = other
                continue
            kept = [(n, other.fragment(n)) for n in other.names() if n in members]
            indexes[name] = BundleIndex.from_sorted(kept)  # type: ignore[arg-type]
        return Registry(
            _bundles=self._bundles,
            _by_priority=self._by_priority,
            _all_adapters=self._all_adapters,
            _models=models,
            _order=names,
            _indexes=indexes,
        )

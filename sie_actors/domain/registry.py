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
from typing import Any, Iterable, Mapping, Sequence

from .append import AppendPlan, load_filesystem_model, plan_append_on
from .bundle import Bundle, bundle_from_mapping, parse_bundle_yaml
from .bundle_index import BundleIndex, BundleIndexBuilder
from .entry import LoadIssue, ModelEntry
from .errors import DomainError
from .hashing import bundles_hash as _bundles_hash
from .ids import canonical_lower

__all__ = [
    "AppendPlan",
    "Bundle",
    "LoadIssue",
    "ModelEntry",
    "Registry",
    "bundle_from_mapping",
    "parse_bundle_yaml",
]


class _Reads:
    """The lookups shared by ``Registry`` and its builder; they are ``domain.append``'s
    ``PlanningView``, so planning never reaches into private fields."""

    _bundles: Mapping[str, Bundle]
    _by_priority: tuple[Bundle, ...]
    _all_adapters: frozenset[str]
    _models: Mapping[str, ModelEntry]

    @property
    def all_adapters(self) -> frozenset[str]:
        return self._all_adapters

    def list_bundles(self) -> tuple[Bundle, ...]:
        """Bundles by ascending priority; ties keep load order."""
        return self._by_priority

    def get_bundle(self, name: object) -> Bundle | None:
        """Exact-case lookup (bundle ids are exact everywhere)."""
        return self._bundles.get(name) if isinstance(name, str) else None

    def get_model(self, model_id: object) -> ModelEntry | None:
        """Case-insensitive lookup; ``None`` for unknown (or non-string) ids."""
        if not isinstance(model_id, str):
            return None
        return self._models.get(canonical_lower(model_id))


class _Builder(_Reads):
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
class Registry(_Reads):
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
                entry, fragments = load_filesystem_model(builder, config)
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
        return plan_append_on(self, config, self)

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
                plan = plan_append_on(builder, config, None)
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

    def list_models(self) -> tuple[ModelEntry, ...]:
        """All models sorted by id (Python string order)."""
        cached = self._memo.get("models")
        if cached is None:
            cached = self._memo["models"] = tuple(
                self._models[canonical_lower(model_id)] for model_id in self._order
            )
        return cached

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

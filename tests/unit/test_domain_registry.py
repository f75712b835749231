"""The registry snapshot: loading, lookups, routing, hashes, worker filtering."""

from __future__ import annotations

import random

import pytest

from sie_actors.domain.bundle import Bundle, parse_bundle_yaml
from sie_actors.domain.bundle_index import CHECKPOINT_EVERY, BundleIndex
from sie_actors.domain.errors import ParseError
from sie_actors.domain.hashing import (
    bundle_config_hash_of,
    normalize_adapter_options,
    reference_bundle_config_hash,
)
from sie_actors.domain.registry import Registry

BERT = "sie_server.adapters.bert_flash"
ST = "sie_server.adapters.sentence_transformer"
SGL = "sie_server.adapters.sglang"
OCR = "sie_server.adapters.glm_ocr"

BUNDLES = [
    Bundle("default", 10, (BERT, ST), default=True),
    Bundle("sglang", 20, (SGL, BERT)),
    Bundle("transformers5", 5, (OCR,)),
]


def model(model_id: str, **profiles: dict) -> dict:
    return {"sie_id": model_id, "profiles": profiles}


def prof(module: str, tokens: int = 512, **extra: object) -> dict:
    return {"adapter_path": f"{module}:Cls", "max_batch_tokens": tokens, **extra}


def independent_hash(registry: Registry, bundle_id: str) -> str:
    """§4.3 written out plainly over the registry's public data, as a second opinion."""
    bundle = registry.get_bundle(bundle_id)
    if bundle is None:
        return ""
    items = []
    for entry in sorted(registry.list_models(), key=lambda e: e.model_id):
        if bundle_id not in entry.bundles or not (entry.modules & set(bundle.adapters)):
            continue
        profiles = []
        for name in sorted(entry.profiles):
            p = entry.profiles[name]
            path = p.get("adapter_path")
            if path and path.split(":", 1)[0] not in bundle.adapters:
                continue
            config = {k: p.get(k) for k in ("adapter_path", "max_batch_tokens", "compute_precision")}
            config["adapter_options"] = normalize_adapter_options(p.get("adapter_options"))
            profiles.append({"name": name, "config": config})
        items.append({"sie_id": entry.model_id, "profiles": profiles})
    return reference_bundle_config_hash(items)


# ----------------------------------------------------------------- bundles


def test_parse_bundle_defaults() -> None:
    assert parse_bundle_yaml("", "stem") == Bundle("stem", 100, ())
    assert parse_bundle_yaml(b"adapters: [a, b]\n", "x") == Bundle("x", 100, ("a", "b"))
    bundle = parse_bundle_yaml(
        "name: default\npriority: 10\ndefault: true\nadapters: [b, a]\ndeps: {x: 1}\n", "f"
    )
    assert bundle == Bundle("default", 10, ("b", "a"), default=True)
    assert bundle.adapter_set == {"a", "b"}


@pytest.mark.parametrize(
    "text",
    [
        "- a\n- b\n",
        "just a string",
        "name: [x\n",
        "priority: high\n",
        "priority: true\n",
        "adapters: a\n",
        "adapters: [1, 2]\n",
        "name: 5\n",
        "name: ''\n",
        b"\xff",
    ],
)
def test_parse_bundle_rejects(text: str | bytes) -> None:
    with pytest.raises(ParseError):
        parse_bundle_yaml(text, "stem")


def test_bundles_sorted_by_priority_ties_in_load_order() -> None:
    bundles = [Bundle("zz", 10, ("m",)), Bundle("aa", 10, ("m",)), Bundle("top", 1, ("m",))]
    registry = Registry.build(bundles, [model("a/b", d=prof("m"))])
    assert [b.name for b in registry.list_bundles()] == ["top", "zz", "aa"]
    assert registry.get_model("a/b").bundles == ("top", "zz", "aa")


def test_duplicate_bundle_name_last_wins_first_position() -> None:
    bundles = [Bundle("a", 10, ("x",)), Bundle("b", 10, ("x",)), Bundle("a", 10, ("y",))]
    registry = Registry.empty(bundles)
    assert [b.name for b in registry.list_bundles()] == ["a", "b"]
    assert registry.get_bundle("a").adapters == ("y",)


def test_get_bundle_is_exact_case() -> None:
    registry = Registry.empty(BUNDLES)
    assert registry.get_bundle("default") is not None
    assert registry.get_bundle("DEFAULT") is None
    assert registry.get_bundle(5) is None


def test_bundles_hash_ignores_order_default_flag_and_adapter_order() -> None:
    a = Registry.empty(BUNDLES).bundles_hash
    shuffled = [
        Bundle(b.name, b.priority, tuple(reversed(b.adapters)), default=not b.default)
        for b in reversed(BUNDLES)
    ]
    assert Registry.empty(shuffled).bundles_hash == a
    assert len(a) == 64
    changed = [Bundle("default", 11, (BERT, ST)), *BUNDLES[1:]]
    assert Registry.empty(changed).bundles_hash != a
    assert Registry.empty([]).bundles_hash == ""


# ----------------------------------------------------------------- loading


def test_build_reports_skipped_unrouteable_and_duplicates() -> None:
    configs = [
        model("ok/one", d=prof(BERT)),
        "not a mapping",
        {"profiles": {}},
        model("bad/path", d={"adapter_path": 5}),
        model("half/routable", d=prof(BERT), x=prof("unknown.module")),
        model("no/route", d=prof("other.module")),
        model("OK/one", d=prof(ST)),
        {"name": "named/only", "profiles": {"d": prof(ST)}},
        {"sie_id": "no/profiles"},
    ]
    registry = Registry.build(BUNDLES, configs)
    kinds = [(i.index, i.kind) for i in registry.load_issues]
    assert kinds == [
        (1, "skipped"),
        (2, "skipped"),
        (3, "skipped"),
        (4, "unrouteable"),
        (5, "unrouteable"),
        (6, "duplicate"),
    ]
    assert [m.model_id for m in registry.list_models()] == [
        "OK/one",
        "half/routable",
        "named/only",
        "no/profiles",
        "no/route",
    ]
    assert registry.get_model("no/route").bundles == ()
    assert registry.get_model("ok/ONE").profiles.keys() == {"d"}
    assert registry.get_model("ok/one").modules == {ST}
    assert registry.unrouteable_models() == {
        "half/routable": ["unknown.module"],
        "no/route": ["other.module"],
    }
    for b in BUNDLES:
        assert registry.bundle_config_hash(b.name) == independent_hash(registry, b.name)


def test_lookup_is_case_insensitive_and_listing_sorted_by_codepoint() -> None:
    registry = Registry.build(BUNDLES, [model("b/x", d=prof(BERT)), model("B/y", d=prof(BERT))])
    assert registry.get_model("B/X").model_id == "b/x"
    assert registry.get_model("b/Y").model_id == "B/y"
    assert registry.get_model("nope") is None
    assert registry.get_model(None) is None
    assert "B/x" in registry and 7 not in registry
    assert [m.model_id for m in registry.list_models()] == ["B/y", "b/x"]
    assert len(registry) == 2


def test_model_bundles_are_model_level_and_priority_sorted() -> None:
    registry = Registry.build(BUNDLES, [model("a/both", d=prof(BERT), s=prof(SGL), o=prof(OCR))])
    assert registry.get_model("a/both").bundles == ("transformers5", "default", "sglang")


# ----------------------------------------------------------------- hashes


def test_bundle_hash_filters_profiles_per_bundle_and_keeps_extends() -> None:
    configs = [model("a/m", d=prof(BERT), s=prof(SGL), e={"extends": "d", "adapter_options": {}})]
    registry = Registry.build(BUNDLES, configs)
    default_only = Registry.build(
        BUNDLES, [model("a/m", d=prof(BERT), e={"extends": "d", "adapter_options": {}})]
    )
    assert registry.bundle_config_hash("default") == default_only.bundle_config_hash("default")
    assert registry.bundle_config_hash("sglang") == independent_hash(registry, "sglang")
    assert registry.bundle_config_hash("sglang") != registry.bundle_config_hash("default")


def test_adapter_options_normalization() -> None:
    assert normalize_adapter_options({}) is None
    assert normalize_adapter_options({"loadtime": {}, "runtime": {}}) is None
    assert normalize_adapter_options({"flag": 0, "x": "", "y": None, "z": []}) is None
    assert normalize_adapter_options({"runtime": {"a": 1}}) == {"runtime": {"a": 1}}
    assert normalize_adapter_options([]) == []
    assert normalize_adapter_options("x") == "x"


def test_empty_and_unknown_bundles_hash_empty() -> None:
    registry = Registry.build(BUNDLES, [model("a/m", d=prof(BERT))])
    assert registry.bundle_config_hash("transformers5") == ""
    assert registry.bundle_config_hash("nope") == ""
    assert len(registry.bundle_config_hash("default")) == 64
    assert registry.bundle_config_hashes().keys() == {"transformers5", "default", "sglang"}


def test_non_ascii_is_raw_utf8_in_hash() -> None:
    text = "Représente — 检索"
    configs = [model("u/m", d=prof(ST, adapter_options={"runtime": {"i": text}}))]
    registry = Registry.build(BUNDLES, configs)
    assert registry.bundle_config_hash("default") == independent_hash(registry, "default")


def test_checkpointed_hash_matches_reference_under_random_writes() -> None:
    """Enough models to span several checkpoints, written in random id order."""
    rng = random.Random(7)
    ids = [f"m/{i:05d}" for i in range(CHECKPOINT_EVERY * 4 + 17)]
    rng.shuffle(ids)
    registry = Registry.empty(BUNDLES)
    for step, model_id in enumerate(ids):
        registry, _ = registry.append(model(model_id, d=prof(BERT, tokens=step + 1)))
        if step % 61 == 0 or step == len(ids) - 1:
            assert registry.bundle_config_hash("default") == independent_hash(registry, "default")
    # appending profiles to existing models at both ends and the middle
    for model_id in (min(ids), max(ids), sorted(ids)[len(ids) // 2]):
        registry, plan = registry.append(model(model_id, extra=prof(ST)))
        assert plan.created_profiles == ("extra",)
        assert registry.bundle_config_hash("default") == independent_hash(registry, "default")
        assert registry.bundle_config_hash("sglang") == independent_hash(registry, "sglang")


@pytest.mark.parametrize("change", ["discard", "put", "replace"])
@pytest.mark.parametrize(
    "position", [0, 1, CHECKPOINT_EVERY - 1, CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY, "last"]
)
def test_bundle_index_checkpoints_after_any_change(change: str, position: object) -> None:
    """Every change position, including ones that leave a checkpoint exactly at the end."""
    n = CHECKPOINT_EVERY * 2 + 1
    names = [f"m/{i:05d}" for i in range(n)]
    builder = BundleIndex.empty().evolve()
    for name in names:
        builder.put(name, b'{"n":"' + name.encode() + b'"}')
    base = builder.freeze()
    base.hexdigest()  # fill the checkpoints
    at = n - 1 if position == "last" else position
    evolved = base.evolve()
    entries = {name: base.fragment(name) for name in names}
    if change == "discard":
        evolved.discard(names[at])
        del entries[names[at]]
    elif change == "put":
        extra = names[at] + "a"
        evolved.put(extra, b"{}")
        entries[extra] = b"{}"
    else:
        evolved.put(names[at], b"[]")
        entries[names[at]] = b"[]"
    index = evolved.freeze()
    expected = bundle_config_hash_of(entries[name] for name in sorted(entries))
    assert index.hexdigest() == expected
    assert base.hexdigest() == bundle_config_hash_of(base.fragment(x) for x in names)


def test_bundle_index_discard_to_chunk_multiple() -> None:
    n = CHECKPOINT_EVERY + 1
    builder = BundleIndex.empty().evolve()
    for i in range(n):
        builder.put(f"m/{i:05d}", b"1")
    base = builder.freeze()
    base.hexdigest()
    evolved = base.evolve()
    evolved.discard(f"m/{n - 1:05d}")
    assert evolved.freeze().hexdigest() == bundle_config_hash_of([b"1"] * (n - 1))
    emptied = BundleIndex.empty().evolve()
    emptied.put("x", b"1")
    emptied.discard("x")
    assert emptied.freeze().hexdigest() == ""


def test_unchanged_index_is_shared() -> None:
    base = BundleIndex.empty().evolve()
    base.put("a", b"1")
    frozen = base.freeze()
    again = frozen.evolve()
    again.put("a", b"1")
    assert again.freeze() is frozen


# ----------------------------------------------------------------- workers


def test_filter_to_bundle_keeps_hash_and_bundles() -> None:
    configs = [
        model("a/both", d=prof(BERT), s=prof(SGL)),
        model("b/sg", d=prof(SGL)),
        model("c/st", d=prof(ST)),
        model("d/ocr", d=prof(OCR)),
    ]
    full = Registry.build(BUNDLES, configs)
    for bundle in BUNDLES:
        worker = full.filter_to_bundle(bundle.name)
        assert worker.bundle_config_hash(bundle.name) == full.bundle_config_hash(bundle.name)
        assert worker.bundles_hash == full.bundles_hash
        assert [m.model_id for m in worker.list_models()] == [
            m.model_id for m in full.models_in_bundle(bundle.name)
        ]
    worker = full.filter_to_bundle("sglang")
    assert [m.model_id for m in worker.list_models()] == ["a/both", "b/sg"]
    assert worker.get_model("c/st") is None
    assert worker.bundle_config_hash("default") == independent_hash(worker, "default")
    assert len(full.filter_to_bundle("unknown")) == 0


def test_worker_applying_deltas_tracks_sie_config_hash() -> None:
    full = Registry.build(BUNDLES, [model("a/both", d=prof(BERT)), model("c/st", d=prof(ST))])
    worker = full.filter_to_bundle("sglang")
    writes = [
        model("a/both", s=prof(SGL)),
        model("new/sg", d=prof(SGL)),
        model("c/st", s=prof(SGL, tokens=9)),
    ]
    for write in writes:
        full, plan = full.append(write)
        if "sglang" in plan.affected_bundles:
            worker, _ = worker.append(dict(plan.merged_config))
        assert worker.bundle_config_hash("sglang") == full.bundle_config_hash("sglang")


def test_models_in_bundle_sorted() -> None:
    registry = Registry.build(BUNDLES, [model("z/a", d=prof(BERT)), model("a/z", d=prof(BERT))])
    assert [m.model_id for m in registry.models_in_bundle("sglang")] == ["a/z", "z/a"]
    assert registry.models_in_bundle("nope") == ()


def test_with_bundles_reroutes() -> None:
    registry = Registry.build(BUNDLES, [model("a/m", d=prof(SGL))])
    rerouted = registry.with_bundles([Bundle("only", 1, (SGL,))])
    assert rerouted.get_model("a/m").bundles == ("only",)
    assert registry.get_model("a/m").bundles == ("sglang",)

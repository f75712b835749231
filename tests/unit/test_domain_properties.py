"""Property tests: the domain's promises hold for any input, not just the examples."""

from __future__ import annotations

import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sie_actors.domain import (
    ConfigDelta,
    DomainError,
    Registry,
    content_conflicts,
    parse_bundle_yaml,
    parse_model_yaml,
    resolve,
    validate_model_config,
)
from sie_actors.domain.bundle import Bundle
from sie_actors.domain.model_config import dump_model_yaml
from sie_actors.domain.hashing import normalize_adapter_options, reference_bundle_config_hash
from sie_actors.domain.model_config import read_filesystem_model
from sie_actors.domain.snapshot import build_export, export_json_bytes, parse_export

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

MODULES = ["m.alpha", "m.beta", "m.gamma", "m.delta"]
BUNDLES = [
    Bundle("default", 10, ("m.alpha", "m.beta")),
    Bundle("second", 20, ("m.beta", "m.gamma")),
    Bundle("tie", 20, ("m.gamma",)),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
keys = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans())
yamlish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)
special_keys = st.sampled_from(
    ["sie_id", "profiles", "adapter_path", "extends", "max_batch_tokens", "adapter_options",
     "name", "model", "bundle"]
)
shaped = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(special_keys, keys), children, max_size=5),
    ),
    max_leaves=25,
)

# Well-formed documents, for the properties about valid writes.
ids = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=6).map(
    lambda s: f"org/{s}"
).filter(lambda i: i != "org/status")  # reserved on the write path, not on the load path
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=6)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def profiles(draw: st.DrawFn) -> dict:
    names = draw(st.lists(st.sampled_from(list("abcdefg")), min_size=1, max_size=4, unique=True))
    result = {}
    for name in names:
        if draw(st.booleans()) or not result:
            profile = {"adapter_path": draw(st.sampled_from(MODULES[:3])) + ":Cls"}
        else:
            profile = {"extends": "a"}
        if draw(st.booleans()):
            profile["max_batch_tokens"] = draw(st.integers(1, 10**6))
        if draw(st.booleans()):
            profile["adapter_options"] = draw(
                st.dictionaries(st.sampled_from(["loadtime", "runtime", "flag"]), json_values,
                                max_size=3)
            )
        if draw(st.booleans()):
            profile["compute_precision"] = draw(st.sampled_from(["bfloat16", None, "float16"]))
        result[name] = profile
    return result


documents = st.builds(lambda i, p: {"sie_id": i, "profiles": p}, ids, profiles())


def independent_hash(registry: Registry, bundle: Bundle) -> str:
    items = []
    for entry in sorted(registry.list_models(), key=lambda e: e.model_id):
        if not entry.modules & set(bundle.adapters):
            continue
        kept = []
        for name in sorted(entry.profiles):
            p = entry.profiles[name]
            path = p.get("adapter_path")
            if path and path.split(":", 1)[0] not in bundle.adapters:
                continue
            config = {k: p.get(k) for k in ("adapter_path", "max_batch_tokens", "compute_precision")}
            config["adapter_options"] = normalize_adapter_options(p.get("adapter_options"))
            kept.append({"name": name, "config": config})
        items.append({"sie_id": entry.model_id, "profiles": kept})
    return reference_bundle_config_hash(items)


def appended(docs: list[dict]) -> Registry:
    registry = Registry.empty(BUNDLES)
    for doc in docs:
        try:
            registry, _ = registry.append(doc)
        except DomainError:
            pass
    return registry


# ----------------------------------------------------------------- never anything but DomainError


@SETTINGS
@given(shaped)
def test_append_path_raises_only_domain_errors(value: object) -> None:
    registry = Registry.build(BUNDLES, [{"sie_id": "org/x", "profiles": {"a": {"adapter_path": "m.alpha:C"}}}])
    for candidate in (value, {"sie_id": "org/x", "profiles": value},
                      {"sie_id": value, "profiles": {"a": {"adapter_path": "m.alpha:C"}}},
                      {"sie_id": "org/x", "profiles": {"n": value}},
                      {"sie_id": "org/y", "profiles": {"n": {"adapter_path": "m.beta:C",
                                                           "adapter_options": value}}}):
        try:
            validate_model_config(candidate)
        except DomainError:
            pass
        try:
            new, plan = registry.append(candidate)
        except DomainError:
            continue
        content_conflicts(plan)
        for bundle in BUNDLES:
            new.bundle_config_hash(bundle.name)
        export_json_bytes(build_export(new, epoch=0, generated_at="t"))


@SETTINGS
@given(st.lists(shaped, max_size=4))
def test_filesystem_load_never_crashes(values: list) -> None:
    registry = Registry.build(BUNDLES, values)
    for value in values:
        try:
            read_filesystem_model(value)
        except DomainError:
            pass
    for bundle in BUNDLES:
        assert registry.bundle_config_hash(bundle.name) == independent_hash(registry, bundle)


@SETTINGS
@given(shaped)
def test_resolve_raises_only_domain_errors(value: object) -> None:
    registry = appended([{"sie_id": "org/x", "profiles": {"a": {"adapter_path": "m.alpha:C"}}}])
    for body in (value, {"model": value}, {"model": "org/x", "bundle": value}):
        try:
            result = resolve(registry, body)
        except DomainError:
            continue
        assert result["resolved_bundle"] in result["compatible_bundles"]


@SETTINGS
@given(st.one_of(st.binary(max_size=60), st.text(max_size=60)))
def test_parsers_raise_only_domain_errors(raw: bytes | str) -> None:
    for parse in (parse_model_yaml, ConfigDelta.from_json, parse_export,
                  lambda r: parse_bundle_yaml(r, "stem"),
                  lambda r: resolve(Registry.empty(BUNDLES), r)):
        try:
            parse(raw)
        except DomainError:
            pass


@SETTINGS
@given(yamlish)
def test_yaml_documents_raise_only_domain_errors(value: object) -> None:
    text = yaml.safe_dump({"sie_id": "org/x", "profiles": {"a": value}})
    try:
        Registry.empty(BUNDLES).append(parse_model_yaml(text))
    except DomainError:
        pass
    try:
        parse_export({"models": [{"model_id": "org/x", "model_config": value}]})
    except DomainError:
        pass


# ----------------------------------------------------------------- hashes


@settings(SETTINGS, max_examples=100)
@given(st.lists(documents, max_size=8), st.randoms(use_true_random=False))
def test_hashes_independent_of_insertion_order(docs: list[dict], rnd) -> None:
    first = {}
    for doc in docs:  # one document per id, so order cannot change which write wins
        first.setdefault(doc["sie_id"].lower(), doc)
    docs = list(first.values())
    shuffled = docs[:]
    rnd.shuffle(shuffled)
    a, b = appended(docs), Registry.build(BUNDLES, shuffled)
    c, _ = Registry.empty(BUNDLES).append_many(list(reversed(docs)))
    assert a.bundle_config_hashes() == b.bundle_config_hashes() == c.bundle_config_hashes()
    assert [(m.model_id, m.bundles) for m in a.list_models()] == [
        (m.model_id, m.bundles) for m in b.list_models()
    ]
    for bundle in BUNDLES:
        assert a.bundle_config_hash(bundle.name) == independent_hash(a, bundle)


@settings(SETTINGS, max_examples=100)
@given(st.lists(documents, min_size=1, max_size=6), st.data())
def test_replaying_existing_profiles_is_a_no_op(docs: list[dict], data: st.DataObject) -> None:
    registry = appended(docs)
    models = registry.list_models()
    if not models:
        return
    entry = data.draw(st.sampled_from(models))
    names = data.draw(st.lists(st.sampled_from(sorted(entry.profiles)), min_size=1, unique=True))
    spelling = data.draw(st.sampled_from([entry.model_id, entry.model_id.upper(),
                                          entry.model_id.lower()]))
    replay = {"sie_id": spelling, "profiles": {n: dict(entry.profiles[n]) for n in names}}
    after, plan = registry.append(replay)
    assert after is registry
    assert plan.created_profiles == ()
    assert plan.skipped_profiles == tuple(names)
    assert plan.model_id == entry.model_id
    assert content_conflicts(plan) is None
    assert after.bundle_config_hashes() == registry.bundle_config_hashes()


@settings(SETTINGS, max_examples=50)
@given(st.lists(documents, min_size=1, max_size=8))
def test_mirrors_and_workers_agree_with_the_writer(docs: list[dict]) -> None:
    """Gateway bootstrap (export), gateway deltas and worker deltas reach the writer's hashes."""
    writer = Registry.empty(BUNDLES)
    gateway = Registry.empty(BUNDLES)
    workers = {b.name: Registry.empty(BUNDLES).filter_to_bundle(b.name) for b in BUNDLES}
    for doc in docs:
        try:
            writer, plan = writer.append(doc)
        except DomainError:
            continue
        if not plan.creates:
            continue
        published = parse_model_yaml(yaml.dump(dict(plan.merged_config), sort_keys=False))
        gateway, _ = gateway.append(published)
        for bundle_id in plan.affected_bundles:
            workers[bundle_id], _ = workers[bundle_id].append(
                parse_model_yaml(yaml.dump(dict(plan.merged_config), sort_keys=False))
            )
    assert gateway.bundle_config_hashes() == writer.bundle_config_hashes()
    snapshot = parse_export(export_json_bytes(build_export(writer, epoch=1, generated_at="t")))
    bootstrapped, results = Registry.empty(BUNDLES).append_many(snapshot.model_configs)
    assert all(not isinstance(r, DomainError) for r in results)
    assert bootstrapped.bundle_config_hashes() == writer.bundle_config_hashes()
    for bundle in BUNDLES:
        assert workers[bundle.name].bundle_config_hash(bundle.name) == writer.bundle_config_hash(
            bundle.name
        )
        assert writer.filter_to_bundle(bundle.name).bundle_config_hash(
            bundle.name
        ) == writer.bundle_config_hash(bundle.name)


@SETTINGS
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_model_yaml_round_trips(config: dict) -> None:
    """Store files and delta payloads carry the document itself, whatever its content."""
    assert yaml.safe_load(dump_model_yaml(config)) == config

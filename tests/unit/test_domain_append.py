"""The one append path: §2.3 rules 5-7, merge, case, replays, stale plans, batches."""

from __future__ import annotations

import pytest

from sie_actors.domain.bundle import Bundle
from sie_actors.domain.errors import DomainError, InvalidModelId, ParseError, ValidationFailed
from sie_actors.domain.registry import Registry

BERT = "sie_server.adapters.bert_flash"
ST = "sie_server.adapters.sentence_transformer"
SGL = "sie_server.adapters.sglang"

BUNDLES = [Bundle("default", 10, (BERT, ST)), Bundle("sglang", 20, (SGL, BERT))]


def model(model_id: str, **profiles: dict) -> dict:
    return {"sie_id": model_id, "profiles": profiles}


def prof(module: str, tokens: int = 512, **extra: object) -> dict:
    return {"adapter_path": f"{module}:Cls", "max_batch_tokens": tokens, **extra}


def fail(registry: Registry, config: object) -> str:
    with pytest.raises(ValidationFailed) as info:
        registry.plan_append(config)
    return info.value.message


@pytest.fixture
def registry() -> Registry:
    return Registry.build(BUNDLES, [model("test/model", default=prof(BERT, tokens=8192))])


# ----------------------------------------------------------------- rules


def test_rule5_unknown_adapters_sorted_and_joined(registry: Registry) -> None:
    config = model("x/y", a=prof("z.mod"), b=prof("a.mod"), c=prof(BERT), d=prof("z.mod"))
    assert fail(registry, config).startswith("Adapter(s) not in any known bundle: a.mod, z.mod. ")


def test_rule5_counts_profiles_that_would_be_skipped() -> None:
    registry = Registry.build(BUNDLES, [model("legacy/m", old=prof("gone.mod"))])
    config = model("legacy/m", old=prof("gone.mod"), new=prof(BERT))
    assert fail(registry, config).startswith("Adapter(s) not in any known bundle: gone.mod. ")


def test_rule6_changed_profile_is_refused(registry: Registry) -> None:
    config = model("test/model", default=prof(BERT, tokens=1))
    assert fail(registry, config) == (
        "Profile 'default' on model 'test/model' already exists with different config "
        "(append-only -- cannot modify). To use the new settings, add them as a new profile "
        "(another name under `profiles`), or under a new model id; on a local `sie-cluster`, "
        "`sie-cluster up --fresh` starts again from an empty store."
    )


def test_rule6_compares_raw_canonical_fields_without_normalization(registry: Registry) -> None:
    config = model("test/model", default=prof(BERT, tokens=8192, adapter_options={}))
    assert "already exists with different config" in fail(registry, config)


def test_rule6_ignores_non_hash_keys(registry: Registry) -> None:
    plan = registry.plan_append(model("test/model", default=prof(BERT, tokens=8192, note="x")))
    assert plan.skipped_profiles == ("default",)
    assert plan.created_profiles == ()


def test_rule7_new_model_of_extends_only() -> None:
    registry = Registry.empty(BUNDLES)
    assert fail(registry, model("x/y", e={"extends": "default"})) == (
        "Model 'x/y' does not resolve to any known bundle. Every new model must contribute "
        "at least one profile whose `adapter_path` module appears in a bundle's adapters "
        "list. (Profiles that only `extends` another profile do not count.)"
    )


def test_rule7_append_that_affects_no_bundle() -> None:
    registry = Registry.build(BUNDLES, [model("legacy/m", old=prof("gone.mod"))])
    config = model("legacy/m", e={"extends": "old"}, f={"extends": "old"})
    assert fail(registry, config) == (
        "Appending profile(s) ['e', 'f'] to model 'legacy/m' does not affect any bundle. "
        "Ensure at least one new profile has an `adapter_path` that a known bundle owns."
    )


def test_extends_only_append_to_routable_model(registry: Registry) -> None:
    new, plan = registry.append(model("test/model", fast={"extends": "default"}))
    assert plan.created_profiles == ("fast",)
    assert plan.affected_bundles == ("default", "sglang")
    assert new.get_model("test/model").profile_names() == ["default", "fast"]


def test_id_errors_are_400_before_422() -> None:
    registry = Registry.empty(BUNDLES)
    for bad in ("org__model", "x/status", 5, "a b"):
        with pytest.raises(InvalidModelId):
            registry.plan_append({"sie_id": bad})
    with pytest.raises(ParseError):
        registry.plan_append([1, 2])


@pytest.mark.parametrize(
    "options", [{1: "int key"}, {"runtime": {"n": 2**70}}, {"s": {1, 2}}, {"b": b"x"}]
)
def test_unhashable_profile_values_are_a_422(options: object) -> None:
    registry = Registry.empty(BUNDLES)
    with pytest.raises(ValidationFailed):
        registry.plan_append(model("x/y", d=prof(BERT, adapter_options=options)))


# ----------------------------------------------------------------- outcomes


def test_new_model_plan(registry: Registry) -> None:
    config = model("new/model", b=prof(BERT), a=prof(SGL))
    plan = registry.plan_append(config)
    assert plan.model_id == "new/model"
    assert plan.is_new_model and plan.creates
    assert plan.created_profiles == ("b", "a")
    assert plan.skipped_profiles == ()
    assert plan.affected_bundles == ("default", "sglang")
    assert plan.routable_bundles_by_profile == {
        "b": ["default", "sglang"],
        "a": ["default", "sglang"],
    }
    assert plan.previous_config is None
    assert registry.get_model("new/model") is None  # planning changes nothing
    new = registry.apply(plan)
    assert new.get_model("new/model").bundles == ("default", "sglang")
    assert new.get_model("NEW/MODEL").profile_names() == ["a", "b"]


def test_routable_bundles_are_model_level_not_per_profile() -> None:
    registry = Registry.empty(BUNDLES)
    _, plan = registry.append(model("new/model", default=prof(BERT)))
    assert plan.routable_bundles_by_profile == {"default": ["default", "sglang"]}


def test_append_created_and_skipped_in_request_order(registry: Registry) -> None:
    config = model("test/model", z=prof(ST), default=prof(BERT, tokens=8192), a=prof(ST))
    new, plan = registry.append(config)
    assert plan.created_profiles == ("z", "a")
    assert plan.skipped_profiles == ("default",)
    assert not plan.is_new_model
    assert list(new.get_model("test/model").profiles) == ["default", "z", "a"]


def test_replay_is_a_no_op(registry: Registry) -> None:
    hashes = registry.bundle_config_hashes()
    same, plan = registry.append(model("test/model", default=prof(BERT, tokens=8192)))
    assert same is registry
    assert not plan.creates
    assert plan.merged_config is registry.get_model("test/model").config
    assert same.bundle_config_hashes() == hashes


def test_case_insensitive_append_targets_existing_model(registry: Registry) -> None:
    new, plan = registry.append(model("TEST/Model", fast=prof(ST)))
    assert plan.model_id == "test/model"
    assert not plan.is_new_model
    assert len(new) == 1
    entry = new.get_model("test/model")
    assert entry.model_id == "test/model"
    assert entry.profile_names() == ["default", "fast"]
    assert plan.merged_config["sie_id"] == "test/model"
    replay, again = new.append(model("Test/MODEL", fast=prof(ST)))
    assert replay is new and again.skipped_profiles == ("fast",)


def test_append_to_filesystem_model_keeps_the_whole_document() -> None:
    baseline = {
        "sie_id": "BAAI/bge-m3",
        "hf_id": "BAAI/bge-m3",
        "tasks": {"encode": {"dense": {"dim": 1024}}},
        "profiles": {"default": prof(BERT), "sparse": {"extends": "default"}},
    }
    registry = Registry.build(BUNDLES, [baseline])
    request = {"sie_id": "BAAI/bge-m3", "description": "new key", "hf_id": "other",
               "profiles": {"medical": prof(ST)}}
    new, plan = registry.append(request)
    merged = plan.merged_config
    assert list(merged["profiles"]) == ["default", "sparse", "medical"]
    assert merged["hf_id"] == "BAAI/bge-m3"  # existing top-level values win
    assert merged["description"] == "new key"  # new top-level keys fill gaps
    assert merged["tasks"] == baseline["tasks"]
    assert list(merged)[:3] == ["sie_id", "hf_id", "tasks"]
    assert new.get_model("BAAI/bge-m3").config == merged
    assert plan.previous_config == baseline
    assert baseline["profiles"].keys() == {"default", "sparse"}  # input never mutated


def test_name_only_baseline_gains_sie_id_on_append() -> None:
    registry = Registry.build(BUNDLES, [{"name": "named/m", "profiles": {"d": prof(BERT)}}])
    _, plan = registry.append(model("named/m", e=prof(ST)))
    assert next(iter(plan.merged_config.items())) == ("sie_id", "named/m")
    assert plan.merged_config["name"] == "named/m"


def test_apply_of_stale_plan_replans(registry: Registry) -> None:
    plan = registry.plan_append(model("test/model", fast=prof(ST, tokens=1)))
    moved, _ = registry.append(model("test/model", fast=prof(ST, tokens=2)))
    with pytest.raises(ValidationFailed):
        moved.apply(plan)
    replayed = registry.apply(plan)
    again = replayed.apply(plan)  # stale against `replayed`: re-planned as a replay
    assert again is replayed


def test_snapshots_are_independent(registry: Registry) -> None:
    before = registry.bundle_config_hash("default")
    new, _ = registry.append(model("a/b", d=prof(BERT)))
    assert registry.get_model("a/b") is None
    assert registry.bundle_config_hash("default") == before
    assert new.bundle_config_hash("default") != before


def test_append_many_matches_sequential_appends(registry: Registry) -> None:
    configs = [
        model("b/m", d=prof(BERT)),
        model("bad id", d=prof(BERT)),
        model("a/m", d=prof(SGL)),
        model("B/M", e=prof(ST)),
        model("a/m", d=prof(SGL, tokens=1)),
        model("c/m", d=prof("nope.mod")),
    ]
    batch, results = registry.append_many(configs)
    sequential = registry
    for config in configs:
        try:
            sequential, _ = sequential.append(config)
        except DomainError:
            pass
    assert batch.bundle_config_hashes() == sequential.bundle_config_hashes()
    assert [type(r).__name__ for r in results] == [
        "AppendPlan",
        "InvalidModelId",
        "AppendPlan",
        "AppendPlan",
        "ValidationFailed",
        "ValidationFailed",
    ]
    assert results[3].model_id == "b/m" and results[3].created_profiles == ("e",)
    assert [m.model_id for m in batch.list_models()] == ["a/m", "b/m", "test/model"]


def test_document_yaml_is_made_once_and_shared(registry: Registry) -> None:
    new, plan = registry.append(model("y/m", d=prof(BERT)))
    entry = new.get_model("y/m")
    assert plan.merged_yaml is entry.raw_yaml
    later, _ = new.append(model("z/m", d=prof(BERT)))
    assert later.get_model("y/m") is entry
    replay = later.plan_append(model("y/m", d=prof(BERT)))
    assert replay.merged_yaml == entry.raw_yaml


def test_unknown_adapter_names_known_adapters_closest_first_and_points_to_bundles_list(
        registry: Registry) -> None:
    message = fail(registry, model("x/y", default=prof("sie_server.adapters.sglan")))
    assert message.startswith("Adapter(s) not in any known bundle: sie_server.adapters.sglan. ")
    known = message.split("closest first: ", 1)[1].split(". See", 1)[0].split(", ")
    assert known[0] == SGL  # the closest
    assert sorted(known) == sorted({BERT, ST, SGL})
    assert "`sie bundles list`" in message


def test_unknown_adapter_keeps_status_and_code(registry: Registry) -> None:
    with pytest.raises(ValidationFailed) as info:
        registry.plan_append(model("x/y", default=prof("my_pkg.adapters")))
    assert info.value.status == 422 and info.value.code == "validation_error"


def test_plan_names_unknown_fields_as_warnings(registry: Registry) -> None:
    config = {"sie_id": "x/new", "hf_idd": "x/new",
              "profiles": {"default": {"adapter_path": f"{BERT}:Cls", "max_batch_token": 8192}}}
    plan = registry.plan_append(config)
    assert plan.created_profiles == ("default",)  # still accepted
    assert list(plan.warnings) == [
        "unknown field 'hf_idd' at the top level; did you mean 'hf_id'?",
        "unknown field 'max_batch_token' in profiles.default; did you mean 'max_batch_tokens'?",
    ]


def test_plan_of_a_clean_document_has_no_warnings(registry: Registry) -> None:
    assert registry.plan_append(model("x/clean", default=prof(BERT))).warnings == ()

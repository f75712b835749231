"""The shipped bundles/ and models/ load cleanly, route, and accept the seed's examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from sie_actors.domain import Registry, content_conflicts, parse_bundle_yaml, parse_model_yaml
from sie_actors.domain.errors import ValidationFailed
from sie_actors.domain.ids import store_file_stem, validate_model_id

ROOT = Path(__file__).resolve().parents[2]

SEED_QUICK_EXAMPLE = """
sie_id: intfloat/multilingual-e5-base
hf_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
    adapter_options:
      loadtime: {}
      runtime:
        pooling: mean
        normalize: true
"""

SEED_MINIMAL = """
sie_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
"""

SEED_FULL = """
sie_id: intfloat/multilingual-e5-base
hf_id: intfloat/multilingual-e5-base

inputs:
  text: true

tasks:
  encode:
    dense:
      dim: 768

profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
    adapter_options:
      loadtime: {}
      runtime:
        pooling: mean
        normalize: true
  financial:
    extends: default
    adapter_options:
      runtime:
        pooling: mean
        normalize: true
        instruction: "Retrieve financial documents"
"""

SEED_PROFILE_APPEND = """
sie_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
  medical:
    extends: default
    adapter_options:
      runtime:
        instruction: "Retrieve medical literature"
"""


def bundles():
    return [parse_bundle_yaml(p.read_bytes(), p.stem) for p in sorted(ROOT.glob("bundles/*.yaml"))]


def model_files() -> list[Path]:
    return sorted(ROOT.glob("models/*.yaml"))


def baseline() -> Registry:
    return Registry.build(bundles(), [parse_model_yaml(p.read_bytes()) for p in model_files()])


def test_bundles() -> None:
    by_name = {b.name: b for b in bundles()}
    assert set(by_name) == {"default", "sglang", "transformers5"}
    default = by_name["default"]
    assert (default.priority, default.default) == (10, True)
    for module in ("sentence_transformer", "bert_flash", "bge_m3_flash", "cross_encoder"):
        assert f"sie_server.adapters.{module}" in default.adapters
    assert by_name["sglang"].priority == 20
    assert by_name["sglang"].adapters == ("sie_server.adapters.sglang",)
    assert by_name["transformers5"].priority == 5
    assert len(set(default.adapters)) == len(default.adapters)


def test_models_load_route_and_are_named_by_id() -> None:
    registry = baseline()
    assert registry.load_issues == ()
    assert 5 <= len(model_files()) <= 8
    for path in model_files():
        config = parse_model_yaml(path.read_bytes())
        model_id = validate_model_id(config["sie_id"])
        assert path.stem == store_file_stem(model_id)
        assert registry.get_model(model_id).bundles, model_id
        _, plan = Registry.empty(bundles()).append(config)  # valid on the write path too
        assert plan.creates
    assert registry.get_model("BAAI/bge-m3").bundles == ("default",)
    assert registry.get_model("Qwen/Qwen3-Embedding-0.6B").bundles == ("sglang",)
    for b in registry.list_bundles():
        if registry.models_in_bundle(b.name):
            assert len(registry.bundle_config_hash(b.name)) == 64


@pytest.mark.parametrize(
    ("model_id", "kind", "dim"),
    [
        ("BAAI/bge-m3", "dense", 1024),
        ("BAAI/bge-m3", "multivector", 1024),
        ("sentence-transformers/all-MiniLM-L6-v2", "dense", 384),
        ("Qwen/Qwen3-Embedding-0.6B", "dense", 1024),
    ],
)
def test_model_facts(model_id: str, kind: str, dim: int) -> None:
    config = baseline().get_model(model_id).config
    assert config["tasks"]["encode"][kind]["dim"] == dim


def test_bge_m3_profiles() -> None:
    entry = baseline().get_model("baai/bge-m3")
    assert {"default", "dense", "sparse", "multivector"} <= set(entry.profiles)
    assert entry.profiles["sparse"]["extends"] == "default"
    assert "sparse" in entry.config["tasks"]["encode"]


def test_rerankers_score() -> None:
    registry = baseline()
    rerankers = [m for m in registry.list_models() if "score" in m.config.get("tasks", {})]
    assert rerankers, "at least one reranker"
    for entry in rerankers:
        assert entry.bundles == ("default",)


@pytest.mark.parametrize("with_models", [False, True])
def test_seed_quick_example_is_a_201(with_models: bool) -> None:
    """The seed's response: created ["default"], routable {"default": ["default"]}."""
    registry = baseline() if with_models else Registry.empty(bundles())
    _, plan = registry.append(parse_model_yaml(SEED_QUICK_EXAMPLE))
    assert plan.model_id == "intfloat/multilingual-e5-base"
    assert plan.created_profiles == ("default",)
    assert plan.skipped_profiles == ()
    assert plan.routable_bundles_by_profile == {"default": ["default"]}


def test_seed_quick_example_replay_is_clean() -> None:
    registry, _ = baseline().append(parse_model_yaml(SEED_QUICK_EXAMPLE))
    plan = registry.plan_append(parse_model_yaml(SEED_QUICK_EXAMPLE))
    assert plan.skipped_profiles == ("default",) and not plan.creates
    assert content_conflicts(plan) is None


def test_seed_full_config_then_quick_example() -> None:
    registry, plan = baseline().append(parse_model_yaml(SEED_FULL))
    assert plan.created_profiles == ("default", "financial")
    plan = registry.plan_append(parse_model_yaml(SEED_QUICK_EXAMPLE))
    assert plan.skipped_profiles == ("default",)
    assert content_conflicts(plan) is None


def test_seed_minimal_then_profile_append() -> None:
    """The seed's profile-append response: created ["medical"], skipped ["default"]."""
    registry, plan = baseline().append(parse_model_yaml(SEED_MINIMAL))
    assert plan.created_profiles == ("default",)
    registry, plan = registry.append(parse_model_yaml(SEED_PROFILE_APPEND))
    assert plan.created_profiles == ("medical",)
    assert plan.skipped_profiles == ("default",)
    assert content_conflicts(plan) is None


def test_seed_minimal_after_quick_example_is_append_only_422() -> None:
    registry, _ = baseline().append(parse_model_yaml(SEED_QUICK_EXAMPLE))
    with pytest.raises(ValidationFailed):
        registry.plan_append(parse_model_yaml(SEED_MINIMAL))

"""The 409 rules (reference §2.5/§2.6), checked against the registry's own document."""

from __future__ import annotations

import pytest

from sie_actors.domain.bundle import Bundle
from sie_actors.domain.errors import ContentConflict
from sie_actors.domain.conflicts import check_content_conflicts, content_conflicts
from sie_actors.domain.registry import Registry

BERT = "sie_server.adapters.bert_flash:BertFlashAdapter"
BUNDLES = [Bundle("default", 10, ("sie_server.adapters.bert_flash",))]


def base() -> Registry:
    registry = Registry.empty(BUNDLES)
    registry, _ = registry.append(
        {
            "sie_id": "api/model",
            "hf_id": "api/model",
            "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8, "revision": "a"}},
        }
    )
    return registry


def test_replay_with_same_raw_profile_is_clean() -> None:
    plan = base().plan_append(
        {"sie_id": "api/model",
         "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8, "revision": "a"}}}
    )
    assert content_conflicts(plan) is None
    check_content_conflicts(plan)


def test_replay_with_different_extra_keys_conflicts() -> None:
    plan = base().plan_append(
        {"sie_id": "api/model",
         "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8, "revision": "b"}}}
    )
    conflict = content_conflicts(plan)
    assert isinstance(conflict, ContentConflict)
    assert conflict.status == 409
    assert conflict.detail()["conflicting_profiles"] == ["default"]
    assert conflict.detail()["model_id"] == "api/model"
    with pytest.raises(ContentConflict):
        check_content_conflicts(plan)


def test_replay_against_a_stored_document_missing_the_profile() -> None:
    plan = base().plan_append(
        {"sie_id": "api/model",
         "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8, "revision": "a"}}}
    )
    stored = {"sie_id": "api/model", "profiles": {}}
    assert content_conflicts(plan, stored).detail()["conflicting_profiles"] == ["default"]


def test_nothing_stored_never_conflicts() -> None:
    plan = base().plan_append(
        {"sie_id": "api/model",
         "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8, "revision": "z"}}}
    )
    assert content_conflicts(plan, {}) is None
    assert content_conflicts(plan, "not a mapping") is None  # type: ignore[arg-type]
    new_model = base().plan_append(
        {"sie_id": "other/m", "hf_id": "x", "profiles": {"d": {"adapter_path": BERT}}}
    )
    assert content_conflicts(new_model) is None


def test_creating_write_with_differing_top_level_fields_conflicts() -> None:
    plan = base().plan_append(
        {"sie_id": "API/Model", "hf_id": "changed", "tasks": {"x": 1}, "zeta": 1,
         "profiles": {"fast": {"adapter_path": BERT, "max_batch_tokens": 1}}}
    )
    conflict = content_conflicts(plan)
    assert conflict is not None
    assert conflict.detail()["conflicting_fields"] == ["hf_id"]  # new keys fill gaps
    stored = {"sie_id": "api/model", "hf_id": "changed", "zeta": 2, "tasks": {"x": 1}}
    assert content_conflicts(plan, stored).detail()["conflicting_fields"] == ["zeta"]


def test_creating_write_ignores_skipped_profile_differences() -> None:
    plan = base().plan_append(
        {"sie_id": "api/model",
         "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8, "revision": "b"},
                      "fast": {"adapter_path": BERT, "max_batch_tokens": 1}}}
    )
    assert content_conflicts(plan) is None
    # the stored document keeps the stored version of the skipped profile
    assert plan.merged_config["profiles"]["default"]["revision"] == "a"


def test_filesystem_profile_replay_after_append_is_clean() -> None:
    """The original 409s here (its store file lacked the filesystem profiles)."""
    fs = {"sie_id": "fs/m", "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8}}}
    registry = Registry.build(BUNDLES, [fs])
    registry, plan = registry.append(
        {"sie_id": "fs/m", "profiles": {"x": {"adapter_path": BERT, "max_batch_tokens": 1}}}
    )
    stored = plan.merged_config
    replay = registry.plan_append(
        {"sie_id": "fs/m", "profiles": {"default": {"adapter_path": BERT, "max_batch_tokens": 8}}}
    )
    assert content_conflicts(replay, stored) is None
    assert content_conflicts(replay) is None

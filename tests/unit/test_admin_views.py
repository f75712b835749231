"""Human views of service responses: the wording operators read."""

from __future__ import annotations

from sie_tools.admin.views import add_summary, bundles_table, epoch_lines, resolve_lines


def test_add_summary_variants() -> None:
    body = {"model_id": "m", "created_profiles": ["b"], "existing_profiles_skipped": ["a"],
            "warnings": ["nats_publish_partial: bundle x"],
            "routable_bundles_by_profile": {"b": ["default", "sglang"]}}
    assert add_summary(201, body, "sie-add-k") == [
        "created m: profile(s) b  [HTTP 201]",
        "  skipped (already present): a",
        "  routable bundles for b: default, sglang",
        "  warning: nats_publish_partial: bundle x",
        "  idempotency key: sie-add-k"]
    unchanged = {"model_id": "m", "created_profiles": [], "existing_profiles_skipped": ["a"]}
    assert add_summary(200, unchanged, None)[0] == "no change to m: all profiles already exist  [HTTP 200]"
    assert add_summary(200, {**unchanged, "dry_run": True}, None)[0].startswith(
        "dry run: m is valid; all profiles already exist")


def test_bundles_table_adds_workers_column_only_for_gateways() -> None:
    config = {"bundles": [{"bundle_id": "default", "priority": 10, "adapter_count": 3,
                           "source": "filesystem"}]}
    assert bundles_table(config)[0].split() == ["BUNDLE", "PRIORITY", "ADAPTERS", "SOURCE"]
    gateway = {"bundles": [{**config["bundles"][0], "connected_workers": 2}]}
    assert bundles_table(gateway)[1].split() == ["default", "10", "3", "filesystem", "2"]


def test_epoch_and_resolve_lines() -> None:
    lines = epoch_lines({"epoch": 3, "generation": "g", "bundles_hash": "h",
                         "bundle_config_hashes": {"b": "", "a": "x"}})
    assert lines == ["epoch 3  generation g", "  bundles_hash: h", "  a: x", "  b: (none)"]
    assert resolve_lines({"model": "m", "resolved_bundle": "d", "compatible_bundles": ["d"],
                          "profiles": ["p"]}) == ["m -> bundle d", "  compatible bundles: d",
                                                  "  profiles: p"]

"""Read views and the export snapshot (reference §1.9, §1.10, §8.1; gateway §2)."""

from __future__ import annotations

import orjson
import pytest
import yaml

from sie_actors.domain.bundle import Bundle, parse_bundle_yaml
from sie_actors.domain.errors import ParseError
from sie_actors.domain.registry import Registry
from sie_actors.domain.snapshot import (
    build_export,
    bundle_summary,
    bundle_yaml_view,
    export_json_bytes,
    export_model_entry,
    gateway_model_yaml,
    model_stub_yaml,
    model_summary,
    parse_export,
)

BERT = "sie_server.adapters.bert_flash"
SGL = "sie_server.adapters.sglang"
BUNDLES = [Bundle("default", 10, (BERT,), default=True), Bundle("sglang", 20, (SGL,))]


def registry() -> Registry:
    configs = [
        {"sie_id": "b/fs", "hf_id": "b/fs", "profiles": {"d": {"adapter_path": f"{BERT}:A"}}},
        {"name": "a/named", "profiles": {"d": {"adapter_path": f"{SGL}:A"}}},
        {"sie_id": "c/none", "profiles": {"d": {"adapter_path": "gone:A"}}},
    ]
    reg = Registry.build(BUNDLES, configs)
    reg, _ = reg.append({"sie_id": "b/fs", "profiles": {"e": {"extends": "d"}}})
    return reg


def test_bundle_yaml_view_is_alphabetical_and_reparses() -> None:
    bundle = Bundle("sglang", 20, ("z.mod", "a.mod"), default=True)
    text = bundle_yaml_view(bundle)
    assert text == (
        "adapters:\n- z.mod\n- a.mod\nname: sglang\npriority: 20\nsource: filesystem\n"
    )
    assert parse_bundle_yaml(text, "ignored") == Bundle("sglang", 20, ("z.mod", "a.mod"))
    assert "source: gateway-registry" in bundle_yaml_view(bundle, "gateway-registry")


def test_model_views() -> None:
    reg = registry()
    assert gateway_model_yaml(reg.get_model("B/FS")) == (
        "bundles:\n- default\nsie_id: b/fs\nsource: gateway-registry\n"
    )
    assert model_stub_yaml("c/none", [], "filesystem") == (
        "bundles: []\nsie_id: c/none\nsource: filesystem\n"
    )
    assert model_summary(reg.get_model("b/fs"), "api") == {
        "model_id": "b/fs",
        "profiles": ["d", "e"],
        "source": "api",
    }
    assert bundle_summary(BUNDLES[0], "filesystem") == {
        "bundle_id": "default",
        "priority": 10,
        "adapter_count": 1,
        "source": "filesystem",
    }


def test_export_entry_carries_the_whole_document() -> None:
    item = export_model_entry(registry().get_model("b/fs"))
    assert list(item) == ["model_id", "model_config", "raw_yaml", "affected_bundles"]
    assert item["model_config"]["profiles"].keys() == {"d", "e"}
    assert yaml.safe_load(item["raw_yaml"]) == item["model_config"]
    assert item["affected_bundles"] == ["default"]


def test_export_round_trip_rebuilds_identical_registry() -> None:
    reg = registry()
    body = build_export(reg, epoch=3, generated_at="2025-06-01T00:00:00+00:00",
                        extra={"generation": "g"})
    assert list(body)[:4] == ["snapshot_version", "epoch", "generated_at", "models"]
    assert [m["model_id"] for m in body["models"]] == ["a/named", "b/fs", "c/none"]
    snapshot = parse_export(export_json_bytes(body))
    assert snapshot.epoch == 3 and snapshot.generation == "g" and snapshot.snapshot_version == 1
    assert snapshot.skipped == ()
    assert snapshot.affected_bundles["c/none"] == ()
    named = snapshot.model_configs[0]
    assert named["sie_id"] == "a/named"  # name-only document gets its id for the append path
    mirror = Registry.build(BUNDLES, snapshot.model_configs)
    assert mirror.bundle_config_hashes() == reg.bundle_config_hashes()
    strict, results = Registry.empty(BUNDLES).append_many(snapshot.model_configs)
    assert [type(r).__name__ for r in results] == ["AppendPlan", "AppendPlan", "ValidationFailed"]
    assert strict.bundle_config_hash("default") == reg.bundle_config_hash("default")


def test_parse_export_falls_back_to_raw_yaml_and_skips_junk() -> None:
    body = {
        "snapshot_version": 1,
        "epoch": 0,
        "models": [
            {"model_id": "x/raw", "model_config": {"sie_id": "x/raw"},
             "raw_yaml": "sie_id: x/raw\nprofiles:\n  d:\n    adapter_path: m:A\n"},
            {"model_id": "x/stub", "model_config": {"sie_id": "x/stub"}, "raw_yaml": ""},
            {"model_id": "x/bad", "model_config": None, "raw_yaml": "[unparsable"},
            "junk",
            {"model_config": {}},
        ],
    }
    snapshot = parse_export(orjson.dumps(body))
    assert [c["sie_id"] for c in snapshot.model_configs] == ["x/raw", "x/stub"]
    assert snapshot.model_configs[0]["profiles"] == {"d": {"adapter_path": "m:A"}}
    assert [s[0] for s in snapshot.skipped] == ["x/bad", "#3", "#4"]


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"{", b"\xff", b'{"epoch": -1}', b'{"epoch": "1"}', b'{"models": {}}',
     b'{"generation": 1}', b'{"snapshot_version": "1"}'],
)
def test_parse_export_rejects_junk(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_export(body)

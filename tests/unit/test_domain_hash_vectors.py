"""Hash parity with the original sie-config, on the cases it computed itself.

The shared file holds every case (including the 109-model upstream catalog); a copy of the
small cases lives in tests/fixtures so a clone without shared/ still checks parity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import orjson
import pytest
import yaml

from sie_actors.domain import Bundle, Registry, parse_model_yaml
from sie_actors.domain.hashing import bundles_hash, reference_bundle_config_hash

SHARED = Path(__file__).resolve().parents[2].parent / "shared/reference/hash-vectors.json"
SMALL = Path(__file__).resolve().parents[1] / "fixtures/hash_vectors_small.json"
SHARED_CASES = [
    "single-model",
    "empty-bundle",
    "extends-and-options",
    "multi-bundle-overlap",
    "api-append",
    "upstream-catalog",
]


def _cases(path: Path) -> dict[str, dict]:
    return {case["name"]: case for case in json.loads(path.read_text("utf-8"))["cases"]}


def _check_case(case: dict) -> None:
    bundles = [Bundle(b["name"], b["priority"], tuple(b["adapters"])) for b in case["bundles"]]
    registry = Registry.build(bundles, [yaml.safe_load(text) for text in case["model_files"]])
    assert [i for i in registry.load_issues if i.kind == "skipped"] == []
    for body, result in zip(case["api_writes"], case["write_results"], strict=True):
        assert result["ok"] is True
        registry, plan = registry.append(parse_model_yaml(body))
        assert list(plan.created_profiles) == result["created"]
    expected = case["expected"]
    assert registry.bundles_hash == expected["bundles_hash"]
    for bundle_id, digest in expected["bundle_config_hash"].items():
        assert registry.bundle_config_hash(bundle_id) == digest, bundle_id
    actual = {m.model_id: list(m.bundles) for m in registry.list_models()}
    assert actual == expected["model_bundles"]


@pytest.mark.parametrize("name", SHARED_CASES)
def test_shared_vectors(name: str) -> None:
    if not SHARED.exists():
        pytest.skip("shared/ not present")
    cases = _cases(SHARED)
    assert name in cases, f"case {name} missing from {SHARED}"
    _check_case(cases[name])


def test_shared_file_has_no_untested_case() -> None:
    if not SHARED.exists():
        pytest.skip("shared/ not present")
    assert sorted(_cases(SHARED)) == sorted(SHARED_CASES)


@pytest.mark.parametrize("name", sorted(_cases(SMALL)))
def test_small_vectors(name: str) -> None:
    _check_case(_cases(SMALL)[name])


def test_small_fixture_matches_shared_file() -> None:
    """The copy must not drift from the source of truth when both are present."""
    if not SHARED.exists():
        pytest.skip("shared/ not present")
    shared = _cases(SHARED)
    small = _cases(SMALL)
    assert sorted(small) == sorted(n for n in SHARED_CASES if n != "upstream-catalog")
    for name, case in small.items():
        assert case == shared[name]


def test_worked_example_bundles_hash() -> None:
    """Reference §4.2, literally."""
    bundle = Bundle("default", 10, ("sie_server.adapters.bert_flash",))
    text = '[{"adapters":["sie_server.adapters.bert_flash"],"name":"default","priority":10}]'
    expected = "4ec6fcefdf0fb2069fab586375e1b82d469a300b290172dfe82467d86eeac819"
    assert hashlib.sha256(text.encode()).hexdigest() == expected
    assert bundles_hash([bundle]) == expected
    assert Registry.empty([bundle]).bundles_hash == expected


def test_worked_example_bundle_config_hash() -> None:
    """Reference §4.3, literally, through the registry and through the plain formula."""
    bundle = Bundle("default", 10, ("sie_server.adapters.bert_flash",))
    config = {
        "sie_id": "test/model",
        "profiles": {
            "default": {
                "adapter_path": "sie_server.adapters.bert_flash:BertFlashAdapter",
                "max_batch_tokens": 8192,
            }
        },
    }
    serialized = (
        b'[{"profiles":[{"config":{"adapter_options":null,"adapter_path":'
        b'"sie_server.adapters.bert_flash:BertFlashAdapter","compute_precision":null,'
        b'"max_batch_tokens":8192},"name":"default"}],"sie_id":"test/model"}]'
    )
    expected = "23f6207c437aaff461f1da11350d3cbd16cce4b91844a98d15a86620a60209a1"
    assert hashlib.sha256(serialized).hexdigest() == expected
    items = orjson.loads(serialized)
    assert orjson.dumps(items, option=orjson.OPT_SORT_KEYS) == serialized
    assert reference_bundle_config_hash(items) == expected
    registry, _ = Registry.empty([bundle]).append(config)
    assert registry.bundle_config_hash("default") == expected
    assert Registry.build([bundle], [config]).bundle_config_hash("default") == expected

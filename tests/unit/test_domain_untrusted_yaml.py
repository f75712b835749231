"""Untrusted YAML text (POST bodies, store files, NATS deltas) through the one parse path
(issue 15): anything PyYAML raises is a DomainError, documents stay plain data that reads back
the same, and a node budget bounds the work one document can cost."""

from __future__ import annotations

import pytest
import yaml

from sie_actors.domain.model_config import dump_model_yaml
from sie_actors.domain.errors import DocumentTooComplex, DomainError, ParseError, ValidationFailed
from sie_actors.domain.model_config import (
    MAX_DOCUMENT_NODES,
    ensure_reads_back,
    parse_model_yaml,
    parse_stored_model_yaml,
)

PARSERS = [parse_model_yaml, parse_stored_model_yaml]
HEAD = "sie_id: a/b\nprofiles:\n  d:\n    adapter_path: m.alpha:X\n"


def _laughs(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return HEAD + "\n".join(lines) + "\n"


HOSTILE = {
    "timestamp out of range (AttributeError in PyYAML)": HEAD + "x: !!timestamp 99999-01-01\n",
    "bad timestamp": HEAD + "x: !!timestamp 2024-13-45\n",
    "5,000-digit integer": HEAD + "x: 1" + "0" * 5000 + "\n",
    "tagged 5,000-digit integer": HEAD + "x: !!int 1" + "0" * 5000 + "\n",
    "bad float tag": HEAD + "x: !!float abc\n",
    "python object tag": HEAD + "x: !!python/object/apply:os.system [echo]\n",
    "python tuple tag": HEAD + "x: !!python/tuple [1, 2]\n",
    "deep flow nesting": HEAD + "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep block nesting": HEAD + "".join("  " * i + f"k{i}:\n" for i in range(3000)),
    "billion laughs": _laughs(9),
    "unhashable key": HEAD + "? [a, b]\n: 1\n",
    "NUL": HEAD + "x: \x00\n",
    "omap": HEAD + "x: !!omap [a: 1, b: 2]\n",
    "pairs": HEAD + "x: !!pairs [a: 1]\n",
    "set": HEAD + "x: !!set {a}\n",
    "binary": HEAD + "x: !!binary aGVsbG8=\n",
    "nan": HEAD + "x: .nan\n",
    "inf in a profile": HEAD + "    max_batch_tokens: .inf\n",
    "2**64 integer": HEAD + f"x: {2 ** 64}\n",
    "over the node budget": HEAD + "x: [" + ",".join("{a: 1}" for _ in range(30_000)) + "]\n",
}


@pytest.mark.parametrize("parse", PARSERS, ids=["post", "stored"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_text_raises_only_domain_errors(parse, name) -> None:
    """A delta's `model_config` goes through `parse_stored_model_yaml`, whose callers (the
    gateway's mirror, the worker's config actor) drop a delta on DomainError: so no hostile text
    can crash them as `!!timestamp 99999-01-01` did."""
    with pytest.raises(DomainError) as info:
        parse(HOSTILE[name])
    assert 400 <= info.value.status < 500
    assert info.value.message


def test_the_issue_inputs_get_the_expected_codes() -> None:
    with pytest.raises(ParseError) as info:
        parse_model_yaml(HOSTILE["timestamp out of range (AttributeError in PyYAML)"])
    assert info.value.status == 400
    with pytest.raises(ValidationFailed) as info:
        parse_model_yaml(HOSTILE["omap"])
    assert "!!omap" in info.value.message and info.value.status == 422
    with pytest.raises(DocumentTooComplex) as info:
        parse_model_yaml(HOSTILE["over the node budget"])
    assert (info.value.status, info.value.code) == (413, "yaml_too_complex")
    assert str(MAX_DOCUMENT_NODES) in info.value.message


@pytest.mark.parametrize("parse", PARSERS, ids=["post", "stored"])
def test_a_document_just_under_the_budget_is_read(parse) -> None:
    items = (MAX_DOCUMENT_NODES - 20) // 2
    text = HEAD + "x: [" + ",".join(f"{{a{i}: 1}}" for i in range(items // 2)) + "]\n"
    assert len(parse(text)["x"]) == items // 2


@pytest.mark.parametrize("parse", PARSERS, ids=["post", "stored"])
def test_timestamps_become_the_text_the_hash_already_used(parse) -> None:
    config = parse(HEAD + "released: 2024-05-01\nat: 2001-12-14 21:59:43.10 -5\n"
                          "2024-01-02: dated key\n")
    assert config["released"] == "2024-05-01"
    assert config["at"] == "2001-12-14T21:59:43.100000-05:00"
    assert config["2024-01-02"] == "dated key"


def test_the_one_serializer_never_writes_python_tags() -> None:
    """The root of defect 1: `yaml.dump` wrote `!!python/tuple`, which no consumer reads."""
    assert "python/" not in dump_model_yaml({"sie_id": "a/b", "x": [("a", 1)]})
    with pytest.raises(ValidationFailed):
        dump_model_yaml({"sie_id": "a/b", "x": object()})
    with pytest.raises(ValidationFailed):  # written with a safe tag that parsing refuses
        config = {"sie_id": "a/b", "x": {"a"}}
        ensure_reads_back(config, dump_model_yaml(config))
    plain = {"sie_id": "a/b", "x": [1, 2.5, True, None, "s", {"k": []}]}
    assert yaml.safe_load(dump_model_yaml(plain)) == plain


def test_reads_back_check_tells_types_apart() -> None:
    config = {"sie_id": "a/b", "n": 1}
    ensure_reads_back(config, dump_model_yaml(config))
    with pytest.raises(ValidationFailed):
        ensure_reads_back(config, "sie_id: a/b\nn: 1.0\n")
    with pytest.raises(ValidationFailed):
        ensure_reads_back(config, "sie_id: a/b\nn: !!python/tuple [1]\n")
    with pytest.raises(ValidationFailed):
        ensure_reads_back({"sie_id": "a/b", "n": float("nan")}, "sie_id: a/b\nn: .nan\n")


def test_bundle_files_and_export_documents_raise_only_domain_errors() -> None:
    """The other two places YAML text is read: a bundle file, and an export item whose
    `raw_yaml` is the document (a gateway's or worker's bootstrap)."""
    import orjson

    from sie_actors.domain.bundle import parse_bundle_yaml
    from sie_actors.domain.snapshot import parse_export

    with pytest.raises(ParseError):
        parse_bundle_yaml("name: !!timestamp 99999-01-01\n", "x")
    body = orjson.dumps({"snapshot_version": 1, "epoch": 1, "models": [
        {"model_id": "a/b", "raw_yaml": "x: !!timestamp 99999-01-01\n"}]})
    try:
        snapshot = parse_export(body)
    except DomainError:
        return
    assert [entry for entry in snapshot.model_configs if entry.get("sie_id") == "a/b"] == []

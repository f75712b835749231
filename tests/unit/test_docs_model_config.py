"""docs/model-config.md's field tables are the domain's list of known fields, no more, no less."""

from __future__ import annotations

import re
from pathlib import Path

from sie_actors.domain.fields import BUNDLE_SCHEMA, MODEL_SCHEMA, known_field_paths

DOC = Path(__file__).resolve().parents[2] / "docs" / "model-config.md"
BUNDLE_HEADING = "## Bundle file fields"


def documented_fields(text: str) -> list[str]:
    """First cells of table rows that name a field (`` `profiles.<profile>.extends` ``), with
    `<placeholder>` written as the schema's `*`."""
    fields = []
    for line in text.splitlines():
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if match:
            fields.append(re.sub(r"<[^>]+>", "*", match.group(1)))
    return fields


def sections() -> tuple[str, str]:
    text = DOC.read_text(encoding="utf-8")
    model_part, bundle_part = text.split(BUNDLE_HEADING, 1)
    return model_part.split("## Model document fields", 1)[1], bundle_part


def test_model_field_tables_match_the_known_fields():
    documented = documented_fields(sections()[0])
    assert len(documented) == len(set(documented)), "a field is documented twice"
    assert sorted(documented) == sorted(known_field_paths(MODEL_SCHEMA))


def test_bundle_field_table_matches_the_known_fields():
    assert documented_fields(sections()[1]) == known_field_paths(BUNDLE_SCHEMA)


def test_every_row_says_required_type_and_meaning():
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if re.match(r"\|\s*`", line):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert len(cells) == 4 and all(cells), line


def test_yaml_examples_in_the_doc_use_only_known_fields():
    import yaml

    from sie_actors.domain.fields import unknown_field_warnings
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        document = yaml.safe_load(block)
        if "adapters" in document:
            continue  # the bundle example
        assert unknown_field_warnings(document) == [], block

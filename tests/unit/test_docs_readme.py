"""The README stands on the clone alone, and its example session is the one the cluster prints."""

from __future__ import annotations

import re
from pathlib import Path

from sie_cluster.cli import EXAMPLE_MODEL, build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def test_nothing_points_outside_the_clone():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert "../shared" not in path.read_text(encoding="utf-8"), path


def test_readme_links_the_project_docs_and_they_exist():
    for doc in ("docs/api.md", "docs/model-config.md", "docs/configuration.md"):
        assert f"]({doc})" in README
        assert (ROOT / doc).is_file()


def test_first_lines_say_what_sie_is_and_what_you_get():
    opening = README.split("\n## ", 1)[0]
    assert "**SIE**" in opening and "control plane" in opening
    assert "What you get" in opening


def test_every_minilm_example_is_the_packaged_file_written_in_a_temp_dir():
    example = EXAMPLE_MODEL.read_text(encoding="utf-8")
    blocks = [b for b in code_blocks(README) if "cat > minilm.yaml" in b]
    assert len(blocks) >= 2
    for block in blocks:
        heredoc = re.search(r"cat > minilm\.yaml <<'YAML'\n(.*?)^YAML$", block, re.S | re.M)
        assert heredoc and heredoc.group(1) == example
        assert block.index('cd "$(mktemp -d)"') < block.index("cat > minilm.yaml")


def test_option_table_lists_every_sie_cluster_up_option():
    up = build_parser()._subparsers._group_actions[0].choices["up"]
    options = [s for a in up._actions for s in a.option_strings if s.startswith("--")]
    options.remove("--help")
    for option in options:
        assert f"`{option}" in README, option


def test_layout_names_every_service_and_library_package():
    layout = README.split("## Layout", 1)[1]
    packages = [p for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()]
    packages += [p for p in (ROOT / "sie_actors").iterdir() if (p / "__init__.py").exists()]
    for package in packages:
        assert f"{package.parent.name}/{package.name}" in layout, package


def test_reset_is_documented():
    assert "sie-cluster up --fresh" in README

"""Write the settings tables of `docs/configuration.md` from the services' declarations.

`python -m sie_actors.settings_doc` rewrites every table between `<!-- settings:NAME -->` and
`<!-- /settings:NAME -->`; `--check` only says whether they are current (exit 1 if not), which
`tests/unit/test_settings_doc.py` runs. The prose around the tables is left as written.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path
from typing import Any, Iterable

from sie_actors.logs import LOG_JSON, LOG_LEVEL
from sie_actors.settings import Setting, declared

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

# Table name -> the settings class it documents (imported by name: services sit above the
# library); every service also reads the logging variables.
TABLES = {
    "sie-config": "sie_config.settings:ConfigSettings",
    "sie-gateway": "sie_gateway.settings:GatewaySettings",
    "sie-worker": "sie_worker.settings:WorkerSettings",
}
SHARED = (LOG_LEVEL, LOG_JSON)
BLOCK = re.compile(r"(<!-- settings:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /settings:(?P=name) -->)",
                   re.S)


def settings_of(table: str) -> list[Setting]:
    module, _, cls = TABLES[table].partition(":")
    return [spec for _, spec in declared(getattr(importlib.import_module(module), cls))] + list(
        SHARED)


def shown_default(spec: Setting) -> str:
    if spec.shown is not None:
        return spec.shown
    value: Any = spec.default
    if value is None or value == () or value == "":
        return "unset" if value is None or value == () else '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple):
        value = ",".join(value)
    return f"`{value}`"


def variables(spec: Setting) -> str:
    """`A`, `B` for variables read together; `A` / `B` when the first one set wins."""
    joiner = ", " if spec.from_environ is not None else " / "
    return joiner.join(f"`{name}`" for name in spec.env)


def table(specs: Iterable[Setting]) -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| {variables(s)} | {shown_default(s)} | {s.doc} |" for s in specs]
    return "\n".join(rows) + "\n"


def rewrite(text: str) -> str:
    """`text` with every marked table regenerated; an unknown table name is an error."""
    def one(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown settings table {name!r} (known: {', '.join(TABLES)})")
        return match.group(1) + table(settings_of(name)) + match.group(4)
    return BLOCK.sub(one, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sie_actors.settings_doc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=DOC)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the tables differ from the declarations; change nothing")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    fresh = rewrite(text)
    if fresh == text:
        return 0
    if args.check:
        print(f"{args.path}: settings tables are stale; run python -m sie_actors.settings_doc",
              file=sys.stderr)
        return 1
    args.path.write_text(fresh, encoding="utf-8")
    print(f"{args.path}: settings tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())

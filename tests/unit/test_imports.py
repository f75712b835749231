"""Every module imports on the running Python with DeprecationWarning as an error, so the next
removal from the standard library (or a dependency's) is a failing test here, not a service that
cannot start; and asyncio stays inside sie_actors.aio (nats-py itself lives in sie_actors.nats)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("sie_actors", "sie_config", "sie_gateway", "sie_worker", "sie_tools", "sie_cluster",
            "sie_bench", "sie_chaos")

IMPORT_ALL = """
import importlib, pkgutil, sys
names = []
for package in sys.argv[1:]:
    root = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # importing it would run the command
        importlib.import_module(info.name)
        names.append(info.name)
print(len(names), "modules imported on Python", sys.version.split()[0])
"""


def test_every_module_imports_with_deprecation_warnings_as_errors():
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", IMPORT_ALL, *PACKAGES],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    count = int(done.stdout.split()[0])
    assert count > 50, done.stdout  # the walk really found the services' modules


def test_asyncio_is_imported_only_by_the_bridge():
    pattern = re.compile(r"^\s*(import asyncio|from asyncio\b)", re.M)
    offenders = [
        str(path.relative_to(REPO))
        for base in (REPO / "sie_actors", REPO / "services")
        for path in base.rglob("*.py")
        if pattern.search(path.read_text()) and "sie_actors/aio/" not in path.as_posix()
    ]
    assert offenders == []

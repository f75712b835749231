"""An unwritable store: writes raise StoreUnavailable, reads keep working, nothing crashes.

Tests run as root here, and root ignores permission bits (CAP_DAC_OVERRIDE), so ``chmod 0o555``
alone would not stop a single write. Two ways that really fail as root are used instead:

* a real read-only directory, exercised by a child process that drops to uid/gid 65534
  (``nobody``) after importing everything it needs; without root, chmod alone is effective and
  the child keeps its uid;
* the ``models`` directory replaced by a regular file, which makes every model write fail with
  ENOTDIR for any user.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sie_actors.store import ConfigStore, StoreUnavailable

NOBODY = 65534

CHILD = r"""
import json, os, sys
from sie_actors.store import ConfigStore, StoreUnavailable
import sie_actors.store.config_store, sie_actors.store.local_backend  # everything imported up front

base, fresh = sys.argv[1], sys.argv[2]
if os.geteuid() == 0:
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError as exc:
        print(json.dumps({"skip": f"cannot drop privileges: {exc}"}))
        sys.exit(0)

out = {"uid": os.geteuid()}
store = ConfigStore.open(base)
out["epoch"] = store.read_epoch()
out["generation"] = store.read_or_create_generation()
out["ids"] = store.list_model_ids()
out["model"] = store.read_model("org/m")
out["all"] = store.load_all_models()
out["exists"] = store.model_exists("org/m")
out["record"] = store.get_idempotency("k", 3600)

def outcome(fn):
    try:
        fn()
    except StoreUnavailable as exc:
        return "StoreUnavailable" + (" (chained)" if exc.__cause__ is not None else "")
    except BaseException as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"

out["write_model"] = outcome(lambda: store.write_model("org/m", "changed: true\n"))
out["write_new_model"] = outcome(lambda: store.write_model("org/new", "x: 1\n"))
out["write_epoch"] = outcome(lambda: store.write_epoch(99))
out["commit_write"] = outcome(lambda: store.commit_write("org/n", "x: 1\n", 100))
out["put_idempotency"] = outcome(lambda: store.put_idempotency("k2", {"status": 201}))
out["prune"] = outcome(lambda: store.prune_idempotency(0))
out["open_without_models_dir"] = outcome(lambda: ConfigStore.open(fresh))
print(json.dumps(out))
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that uid 65534 can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="sie-store-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for sub in [path, *path.rglob("*")]:
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o755)
        shutil.rmtree(path)


def snapshot(base: Path) -> dict[str, bytes]:
    files = sorted(p for p in base.rglob("*") if p.is_file())
    return {str(p.relative_to(base)): p.read_bytes() for p in files}


def test_read_only_directory_refuses_writes_and_serves_reads(shared_dir: Path) -> None:
    base = shared_dir / "store"
    store = ConfigStore.open(str(base))
    store.commit_write("org/m", "sie_id: org/m\n", 3)
    generation = store.read_or_create_generation()
    store.put_idempotency("k", {"status": 201})
    fresh = shared_dir / "fresh"
    fresh.mkdir()
    for directory in [base / "models", base / "idempotency", base, fresh]:
        directory.chmod(0o555)
    for path in base.rglob("*"):
        if path.is_file():
            path.chmod(0o444)
    before = snapshot(base)

    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(base), str(fresh)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    if "skip" in out:
        pytest.skip(out["skip"])
    if os.geteuid() == 0:
        assert out["uid"] == NOBODY

    assert out["epoch"] == 3
    assert out["generation"] == generation
    assert out["ids"] == ["org/m"]
    assert out["model"] == "sie_id: org/m\n"
    assert out["all"] == {"org/m": "sie_id: org/m\n"}
    assert out["exists"] is True
    assert out["record"] == {"status": 201}
    writes = [
        "write_model", "write_new_model", "write_epoch", "commit_write", "put_idempotency", "prune"
    ]
    for op in writes:
        assert out[op] == "StoreUnavailable (chained)", (op, out[op])
    assert out["open_without_models_dir"] == "StoreUnavailable (chained)"
    assert snapshot(base) == before, "a refused write changed the store"
    assert not [p for p in base.rglob("*") if p.name.endswith(".tmp")]


def test_models_path_that_is_a_file_fails_writes_even_as_root(tmp_path: Path) -> None:
    base = tmp_path / "store"
    store = ConfigStore.open(str(base))
    store.write_epoch(5)
    generation = store.read_or_create_generation()
    shutil.rmtree(base / "models")
    (base / "models").write_bytes(b"not a directory")
    assert stat.S_ISREG(os.stat(base / "models").st_mode)

    with pytest.raises(StoreUnavailable) as info:
        store.write_model("org/m", "x: 1\n")
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(StoreUnavailable):
        store.commit_write("org/m", "x: 1\n", 6)
    with pytest.raises(StoreUnavailable):
        store.list_model_ids()
    # What does not live under models/ still reads fine.
    assert store.read_or_create_generation() == generation
    assert store.read_epoch() == 6  # epoch went first; an epoch ahead of the models is allowed
    with pytest.raises(StoreUnavailable):
        ConfigStore.open(str(base))

"""Atomic single-file writes and the epoch-before-model order of commit_write."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from sie_actors.store import ConfigStore, StoreUnavailable
from sie_actors.store.backend import Backend
from sie_actors.store.opening import open_backend


def temp_files(base: Path) -> list[Path]:
    return [p for p in base.rglob("*") if p.name.endswith(".tmp")]


def test_commit_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = ConfigStore.open(str(tmp_path))
    for i in range(1, 6):
        store.commit_write(f"org/m{i}", f"i: {i}\n", i)
    store.put_idempotency("k", {"status": 201})
    store.read_or_create_generation()
    assert temp_files(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        f"org__m{i}.yaml" for i in range(1, 6)
    ]


def test_failed_model_replace_keeps_old_content_and_counts_the_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore.open(str(tmp_path))
    store.commit_write("org/m", "version: 1\n", 1)
    real_replace = os.replace
    failure = OSError(errno.EIO, "injected I/O error")

    def replace(src: str, dst: str, *args: object, **kwargs: object) -> None:
        if str(dst).endswith("org__m.yaml"):
            raise failure
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StoreUnavailable) as info:
        store.commit_write("org/m", "version: 2\n", 2)
    assert info.value.__cause__ is failure
    monkeypatch.undo()

    assert temp_files(tmp_path) == []
    reopened = ConfigStore.open(str(tmp_path))
    assert reopened.read_model("org/m") == "version: 1\n"
    # The epoch went first: it may be ahead of the models, never behind them.
    assert reopened.read_epoch() == 2


def test_failed_epoch_write_leaves_the_model_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore.open(str(tmp_path))
    store.commit_write("org/m", "version: 1\n", 1)
    real_replace = os.replace
    targets: list[str] = []

    def replace(src: str, dst: str, *args: object, **kwargs: object) -> None:
        targets.append(os.path.basename(dst))
        if str(dst).endswith("epoch"):
            raise OSError(errno.ENOSPC, "injected: disk full")
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(StoreUnavailable):
        store.commit_write("org/m", "version: 2\n", 2)
    monkeypatch.undo()

    assert targets == ["epoch"], "the model must not be attempted once the epoch failed"
    assert temp_files(tmp_path) == []
    assert store.read_model("org/m") == "version: 1\n"
    assert store.read_epoch() == 1


def test_failure_while_writing_the_temp_file_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore.open(str(tmp_path))
    store.write_model("org/m", "version: 1\n")

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "injected fsync failure")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(StoreUnavailable):
        store.write_model("org/m", "version: 2\n")
    with pytest.raises(StoreUnavailable):
        store.put_idempotency("k", {"status": 201})
    monkeypatch.undo()
    assert temp_files(tmp_path) == []
    assert store.read_model("org/m") == "version: 1\n"


def test_model_file_is_fsynced_before_it_is_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore.open(str(tmp_path))
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: str, *args: object, **kwargs: object) -> None:
        events.append(f"replace {os.path.basename(dst)}")
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.commit_write("org/m", "x: 1\n", 1)
    # file fsync, rename, directory fsync - for the epoch, then the same for the model.
    assert events == ["fsync", "replace epoch", "fsync", "fsync", "replace org__m.yaml", "fsync"]


class RecordingBackend:
    """Wraps a real backend, records writes, and can fail the write of one path."""

    def __init__(self, inner: Backend, fail_on: str | None = None) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.writes: list[str] = []

    @property
    def location(self) -> str:
        return self.inner.location

    def read_bytes(self, rel: str) -> bytes | None:
        return self.inner.read_bytes(rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.writes.append(rel)
        if rel == self.fail_on:
            raise StoreUnavailable(f"injected failure writing {rel}")
        self.inner.write_bytes(rel, data)

    def delete(self, rel: str) -> bool:
        return self.inner.delete(rel)

    def exists(self, rel: str) -> bool:
        return self.inner.exists(rel)

    def close(self) -> None:
        self.inner.close()

    def list_names(self, rel_dir: str) -> list[str]:
        return self.inner.list_names(rel_dir)

    def list_modified(self, rel_dir: str) -> dict[str, float | None]:
        return self.inner.list_modified(rel_dir)


@pytest.fixture(params=["local", "memory"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return f"memory://sie-store-test-{uuid.uuid4().hex}"


def test_commit_write_orders_epoch_before_model_on_every_backend(backend_url: str) -> None:
    backend = RecordingBackend(open_backend(backend_url))
    ConfigStore(backend).commit_write("org/m", "x: 1\n", 1)
    assert backend.writes == ["epoch", "models/org__m.yaml"]


def test_model_failure_on_any_backend_leaves_an_epoch_that_counts_it(backend_url: str) -> None:
    backend = RecordingBackend(open_backend(backend_url), fail_on="models/org__m.yaml")
    store = ConfigStore(backend)
    with pytest.raises(StoreUnavailable):
        store.commit_write("org/m", "x: 1\n", 4)
    assert store.read_model("org/m") is None
    assert store.read_epoch() == 4


def test_a_directory_swapped_during_a_write_never_hides_a_stored_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by sie-chaos: its store fault replaces `models/` by a file while writes run. A write
    whose rename had landed then failed its directory fsync (done by path, which now named the
    file) and reported failure; sie-config answered 503 "nothing was applied", and the model
    appeared at the next restart. Either the write raises and is absent, or it returns and is
    stored: never both."""
    store = ConfigStore.open(str(tmp_path))
    store.commit_write("org/m", "version: 1\n", 1)
    models, away = tmp_path / "models", tmp_path / "models.away"
    real_replace = os.replace

    def replace_then_swap(src, dst, *args, **kwargs) -> None:
        real_replace(src, dst, *args, **kwargs)
        if str(dst).endswith("org__m.yaml"):
            models.rename(away)
            models.write_text("the store is failing")

    monkeypatch.setattr(os, "replace", replace_then_swap)
    try:
        store.commit_write("org/m", "version: 2\n", 2)
        raised = False
    except StoreUnavailable:
        raised = True
    monkeypatch.undo()
    models.unlink()
    away.rename(models)
    stored = ConfigStore.open(str(tmp_path)).read_model("org/m")
    assert stored == ("version: 1\n" if raised else "version: 2\n")
    assert not raised  # the whole write happened in one directory, which came back intact
    assert temp_files(tmp_path) == []

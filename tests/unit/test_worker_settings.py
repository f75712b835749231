"""sie-worker settings and its starting catalog: precedence rules and start-up errors."""

from __future__ import annotations

import pytest

from sie_worker.catalog import UnknownBundle, load_catalog
from sie_worker.settings import WorkerSettings, advertise_url
from tests.conftest import REPO


def settings(env: dict[str, str], **kwargs) -> WorkerSettings:
    return WorkerSettings.from_env(env, **kwargs)


def test_name_precedence():
    env = {"POD_NAME": "pod", "HOSTNAME": "host"}
    assert settings(env, name="cli").name == "cli"
    assert settings(env).name == "pod"
    assert settings({"HOSTNAME": "host"}).name == "host"
    assert settings({}).name  # the machine's host name


def test_bundle_and_pool():
    assert settings({}).bundle == "default"
    assert settings({"SIE_BUNDLE": "sglang"}).bundle == "sglang"
    assert settings({"SIE_BUNDLE": "sglang"}, bundle="default").bundle == "default"
    assert settings({"SIE_POOL": "l4"}).pool == "l4"
    assert settings({"SIE_POOL": "l4"}, pool="a100").pool == "a100"
    for bad in ("a.b", "a b", "a*", "a>"):
        with pytest.raises(SystemExit):
            settings({}, bundle=bad)


def test_outbound_token_prefers_the_read_token():
    assert settings({"SIE_AUTH_TOKEN": "r", "SIE_ADMIN_TOKEN": "a"}).token == "r"
    assert settings({"SIE_AUTH_TOKEN": "", "SIE_ADMIN_TOKEN": "a"}).token == "a"
    assert settings({}).token is None


def test_intervals_and_urls():
    s = settings({"SIE_WORKER_HEARTBEAT_S": "0.25", "SIE_WORKER_POLL_S": "3",
                  "SIE_WORKER_ANNOUNCE_S": "7", "SIE_CONFIG_SERVICE_URL": "http://c:8080/",
                  "SIE_NATS_CONFIG_TRUSTED_PRODUCERS": "sie-config, mine"})
    assert (s.heartbeat_s, s.poll_s, s.announce_s) == (0.25, 3.0, 7.0)
    assert s.config_url == "http://c:8080"
    assert s.trusted_producers == ("sie-config", "mine")
    d = settings({})
    assert (d.heartbeat_s, d.poll_s, d.announce_s) == (1.0, 10.0, 5.0)
    assert d.config_url is None and d.nats_url is None
    assert d.trusted_producers == ("sie-config",)
    with pytest.raises(SystemExit):
        settings({"SIE_WORKER_POLL_S": "soon"})
    assert advertise_url(None, "127.0.0.1", 9) == "http://127.0.0.1:9"
    assert advertise_url("http://w-0.svc:8080/", "0.0.0.0", 9) == "http://w-0.svc:8080"
    assert not advertise_url(None, "0.0.0.0", 9).startswith("http://0.0.0.0")


def test_catalog_of_a_bundle():
    catalog = load_catalog(REPO / "bundles", REPO / "models", "sglang")
    assert catalog.bundle.name == "sglang"
    assert {b.name for b in catalog.bundles} == {"default", "sglang", "transformers5"}
    assert [m.model_id for m in catalog.registry.models_in_bundle("sglang")] == [
        "Qwen/Qwen3-Embedding-0.6B"]


def test_unknown_bundle_is_a_clear_start_error(tmp_path):
    with pytest.raises(UnknownBundle, match="unknown bundle 'nope'.*default"):
        load_catalog(REPO / "bundles", REPO / "models", "nope")
    (tmp_path / "other.yaml").write_text("name: different\nadapters: []\n")
    with pytest.raises(UnknownBundle, match="declares name 'different'"):
        load_catalog(tmp_path, None, "other")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(UnknownBundle, match="unreadable"):
        load_catalog(tmp_path, None, "broken")

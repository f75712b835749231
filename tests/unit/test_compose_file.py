"""compose.yaml and the smoke run's override, checked without Docker (scripts/compose-smoke runs them).

The topology must stay the one of `sie-cluster up`: one worker per bundle of bundles/, so adding a
bundle without its compose worker fails here, not in a user's cluster.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

from sie_actors.seed import load_bundles

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
SIE_SERVICES = {name: svc for name, svc in SERVICES.items() if name != "nats"}


def load_smoke():
    spec = importlib.util.spec_from_file_location("compose_smoke", ROOT / "scripts/compose_smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_worker_per_bundle_and_two_gateways():
    bundles = {b.name for b in load_bundles(ROOT / "bundles")}
    workers = {name: svc for name, svc in SERVICES.items() if name.startswith("worker-")}
    assert {svc["command"][svc["command"].index("--bundle") + 1] for svc in workers.values()} == bundles
    assert sorted(n for n in SERVICES if n.startswith("gateway-")) == ["gateway-0", "gateway-1"]
    gateway_workers = SERVICES["gateway-0"]["environment"]["SIE_GATEWAY_WORKERS"].split(",")
    assert sorted(gateway_workers) == sorted(f"http://{name}:8080" for name in workers)
    for gateway in ("gateway-0", "gateway-1"):  # each fleet page shows both gateways' epochs
        peers = SERVICES[gateway]["environment"]["SIE_GATEWAY_PEERS"].split(",")
        assert peers == ["http://gateway-0:8080", "http://gateway-1:8080"]
    assert set(load_smoke().WORKERS) == bundles


def test_every_service_has_a_healthcheck_and_starts_after_what_it_needs():
    for name, svc in SIE_SERVICES.items():
        probe = " ".join(svc["healthcheck"]["test"])
        assert "/readyz" in probe and "curl" not in probe, name
        assert svc["depends_on"], name
        assert all(dep["condition"] == "service_healthy" for dep in svc["depends_on"].values())
    assert "/healthz" in " ".join(SERVICES["nats"]["healthcheck"]["test"])
    assert set(SERVICES["gateway-0"]["depends_on"]) == {
        "sie-config", *(n for n in SERVICES if n.startswith("worker-"))}


def test_one_image_the_store_on_a_named_volume_tokens_from_env_ports_published():
    assert {svc["image"] for svc in SIE_SERVICES.values()} == {"${SIE_IMAGE:-sie-actors:local}"}
    assert SERVICES["nats"]["image"] == "${NATS_IMAGE:-nats:2.10-alpine}"
    config = SERVICES["sie-config"]
    assert config["volumes"] == ["sie-config-data:/data/config"]
    assert "sie-config-data" in COMPOSE["volumes"]
    assert config["environment"]["SIE_CONFIG_RESTORE"] == "true"
    for svc in SIE_SERVICES.values():
        assert svc["environment"]["SIE_ADMIN_TOKEN"].startswith("${SIE_ADMIN_TOKEN:?")
    published = {name: svc.get("ports", []) for name, svc in SERVICES.items()}
    assert {n for n, p in published.items() if p} == {"sie-config", "gateway-0", "gateway-1"}
    assert "version" not in COMPOSE  # the compose spec: accepted by v2 and by 1.29


def test_dockerfile_base_image_argument_and_non_root_user():
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.12-slim" in text
    assert re.search(r"^USER sie$", text, re.M)
    assert not re.search(r"^# *syntax=", text, re.M)  # BuildKit would fetch a frontend image
    assert (ROOT / "docker/wheels").is_dir()  # the default WHEELS folder must exist to COPY it


def test_smoke_override_puts_everything_on_the_host_network_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOKE_IMAGE", "sie-actors:test")
    monkeypatch.setenv("SMOKE_BASE_IMAGE", "base:test")
    load_smoke().plan(tmp_path)
    override = yaml.safe_load((tmp_path / "compose.host.yaml").read_text())["services"]
    assert set(override) == set(SERVICES)
    urls = json.loads((tmp_path / "plan.json").read_text())["url"]
    assert len(set(urls.values())) == len(urls)
    for name, svc in override.items():
        assert svc["network_mode"] == "host", name
        text = json.dumps(svc)
        hosts = set(re.findall(r"(?:https?|nats)://([^:/\"]+)", text)) | set(
            svc["command"][i + 1] for i, a in enumerate(svc["command"]) if a in ("--host", "-a"))
        assert hosts == {"127.0.0.1"}, (name, hosts)
    # the project's compose.yaml, only without its published ports
    copy = yaml.safe_load((tmp_path / "compose.yaml").read_text())["services"]
    assert not any("ports" in svc for svc in copy.values())
    assert copy["sie-config"]["volumes"] == SERVICES["sie-config"]["volumes"]
    env = (tmp_path / "compose.env").read_text()
    assert "NATS_IMAGE=sie-actors:test" in env and "BASE_IMAGE=base:test" in env
    # JetStream (the encode work queue) on both ways compose starts NATS
    assert "-js" in override["nats"]["command"] and "-js" in SERVICES["nats"]["command"]


def test_env_example_sets_the_tokens():
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert any(line.startswith("SIE_ADMIN_TOKEN=") for line in lines)
    assert any(line.startswith("SIE_AUTH_TOKEN=") for line in lines)

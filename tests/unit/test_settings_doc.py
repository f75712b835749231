"""Settings are declared once: the docs tables are generated from the declarations, each
declaration reads its variable by the shared rules, and the supervisor limits are settings."""

from __future__ import annotations

import pytest
import trio

from sie_actors.runtime.supervisor import ChildSpec, Supervisor
from sie_actors.settings import count, declared, port_number, positive_float
from sie_actors.settings_doc import DOC, TABLES, main, rewrite, settings_of
from sie_config.settings import ConfigSettings
from sie_gateway.metrics import GatewayMetrics
from sie_gateway.settings import GatewaySettings
from sie_worker.settings import WorkerSettings

CLASSES = (ConfigSettings, GatewaySettings, WorkerSettings)


def test_docs_tables_are_the_declarations():
    text = DOC.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run: python -m sie_actors.settings_doc"
    for name in TABLES:
        assert f"<!-- settings:{name} -->" in text
        for spec in settings_of(name):
            assert f"`{spec.env[0]}`" in text


def test_a_stale_table_fails_the_check_and_is_rewritten(tmp_path, capsys):
    doc = tmp_path / "configuration.md"
    stale = DOC.read_text(encoding="utf-8").replace(
        "| `SIE_GATEWAY_POLL_INTERVAL_S` | `5` |", "| `SIE_GATEWAY_POLL_INTERVAL_S` | `7` |")
    doc.write_text(stale, encoding="utf-8")
    assert main(["--check", str(doc)]) == 1
    assert doc.read_text(encoding="utf-8") == stale
    assert main([str(doc)]) == 0
    assert main(["--check", str(doc)]) == 0
    assert "| `SIE_GATEWAY_POLL_INTERVAL_S` | `5` |" in doc.read_text(encoding="utf-8")
    doc.write_text("<!-- settings:nope -->\n<!-- /settings:nope -->\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="unknown settings table 'nope'"):
        main(["--check", str(doc)])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_an_unset_or_blank_variable_is_the_declared_default(cls):
    for name, spec in declared(cls):
        if spec.unset is None and spec.from_environ is None:
            assert spec.read({}) == spec.default == getattr(cls(), name)
            assert spec.read({env: "  " for env in spec.env}) == spec.default


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_supervisor_limits_are_settings(cls):
    default = cls.from_env({})
    assert (default.supervisor_max_restarts, default.supervisor_window) == (20, 60.0)
    tuned = cls.from_env({"SIE_SUPERVISOR_MAX_RESTARTS": "3", "SIE_SUPERVISOR_WINDOW_S": "5"})
    assert (tuned.supervisor_max_restarts, tuned.supervisor_window) == (3, 5.0)
    with pytest.raises(SystemExit, match="SIE_SUPERVISOR_MAX_RESTARTS must be a whole number"):
        cls.from_env({"SIE_SUPERVISOR_MAX_RESTARTS": "many"})
    with pytest.raises(SystemExit, match="SIE_SUPERVISOR_WINDOW_S must be positive"):
        cls.from_env({"SIE_SUPERVISOR_WINDOW_S": "0"})


def test_parse_errors_name_the_variable():
    with pytest.raises(SystemExit, match=r"^SIE_X must be a number, got 'soon'$"):
        positive_float("soon", "SIE_X")
    with pytest.raises(SystemExit, match=r"^SIE_X must be positive, got '-1'$"):
        positive_float("-1", "SIE_X")
    with pytest.raises(SystemExit, match=r"^SIE_X must not be negative, got '-1'$"):
        count("-1", "SIE_X")
    assert count(" 0 ", "SIE_X") == 0
    for bad in ("0", "65536", "http"):
        with pytest.raises(SystemExit, match=r"^SIE_X must be "):
            port_number(bad, "SIE_X")
    assert port_number("8181", "SIE_X") == 8181
    assert GatewaySettings.from_env({}).inference_port is None
    assert GatewaySettings.from_env(
        {"SIE_GATEWAY_INFERENCE_PORT": "8181"}).inference_port == 8181


def test_gateway_reads_lists_fallbacks_and_flags():
    s = GatewaySettings.from_env({"SIE_GATEWAY_WORKERS": "http://w1/, http://w2,,http://w1",
                                  "SIE_GATEWAY_URLS": "http://g1/,http://g2",
                                  "SIE_CONFIG_SERVICE_URL": "http://c:8080/",
                                  "HOSTNAME": "gw-host"}, workers=["http://w3/", "http://w2"])
    assert s.workers == ("http://w1", "http://w2", "http://w3")
    assert s.peers == ("http://g1", "http://g2")
    assert s.config_url == "http://c:8080" and s.name == "gw-host"
    assert GatewaySettings.from_env({"SIE_GATEWAY_PEERS": "http://p", "SIE_GATEWAY_URLS": "x",
                                     "POD_NAME": "pod"}).peers == ("http://p",)
    d = GatewaySettings.from_env({})
    assert (d.name, d.poll_interval, d.trusted_producers) == ("sie-gateway", 5.0, ("sie-config",))


def test_config_reads_producer_restore_and_tokens():
    s = ConfigSettings.from_env({"SIE_CONFIG_RESTORE": "yes", "POD_NAME": "sie-config-0",
                                 "SIE_AUTH_TOKEN": "r", "SIE_ADMIN_TOKEN": ""})
    assert s.restore is True and s.router_id == "sie-config-0"
    assert (s.tokens.read, s.tokens.admin) == ("r", None)
    d = ConfigSettings.from_env({"HOSTNAME": "h"})
    assert d.restore is False and d.router_id.startswith("sie-config-h-")
    assert d.bundles_dir is not None and d.idempotency_ttl == 86400.0


async def test_the_gateway_counts_its_supervisor_restarts(autojump_clock):
    metrics = GatewayMetrics()
    runs = []

    async def flaky(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        runs.append(1)
        task_status.started()
        if len(runs) < 3:
            raise RuntimeError("boom")

    supervisor = Supervisor("sie-gateway", [ChildSpec("flaky", flaky, restart="transient")],
                            max_restarts=5, window=60.0, on_restart=metrics.count_restart)
    with trio.fail_after(1000):
        await supervisor.run()
    text = metrics.render()[0].decode()
    assert 'sie_gateway_actor_restarts_total{actor="flaky"} 2.0' in text

"""`sie-cluster up`'s data dir lock, `--fresh`, the busy-port message and the banner's example."""

from __future__ import annotations

import os
import socket
import time

import pytest

from sie_cluster.cli import EXAMPLE_MODEL, banner, build_parser, cluster_ports
from sie_cluster.datadir import DataDirError, DataDirLock, looks_like_store, reset_store
from sie_cluster.ports import busy_port_message, first_busy_port, port_holder
from sie_cluster.topology import plan_cluster


def test_a_second_lock_on_the_same_data_dir_is_refused_and_names_the_holder(tmp_path):
    with DataDirLock(tmp_path):
        with pytest.raises(DataDirError) as info:
            DataDirLock(tmp_path).acquire()
    assert f"in use by another sie-cluster (pid {os.getpid()})" in str(info.value)
    assert "--data-dir" in str(info.value)
    with DataDirLock(tmp_path):  # released on exit: the next cluster may start
        pass


def test_fresh_moves_the_store_aside(tmp_path):
    store = tmp_path / "config-store"
    (store / "models").mkdir(parents=True)
    (store / "epoch").write_text("3")
    (store / "models" / "a__b.yaml").write_text("sie_id: a/b\n")
    moved = reset_store(tmp_path, clock=lambda: time.gmtime(0))
    assert moved == tmp_path / "config-store.before-fresh-19700101T000000Z"
    assert not store.exists() and (moved / "models" / "a__b.yaml").exists()
    assert reset_store(tmp_path) is None  # nothing left to move


def test_fresh_refuses_a_directory_that_is_not_a_store(tmp_path):
    store = tmp_path / "config-store"
    store.mkdir()
    (store / "thesis.tex").write_text("precious")
    assert not looks_like_store(store)
    with pytest.raises(DataDirError, match="does not look like a sie-config store"):
        reset_store(tmp_path)
    assert (store / "thesis.tex").exists()


def test_busy_port_names_the_process_holding_it_and_the_flag():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_holder(port).startswith(f"pid {os.getpid()} (")
        message = busy_port_message("sie-config", port, "--base-port")
        assert message.startswith(f"port {port} for sie-config is already in use (held by pid "
                                  f"{os.getpid()} (")
        assert message.endswith("choose other ports with --base-port")
        assert first_busy_port([("nats", port, "--nats-port")]).endswith("--nats-port")
    assert first_busy_port([("nats", port, "--nats-port")]) is None


def test_every_cluster_port_says_which_flag_moves_it(tmp_path):
    plan = plan_cluster(data_dir=tmp_path, base_port=41000, nats_port=41999,
                        inference_ports=[41101, 41102])
    ports = {name: (port, flag) for name, port, flag in cluster_ports(plan)}
    assert ports.pop("nats") == (41999, "--nats-port")
    assert ports.pop("gateway-1's inference port") == (41102, "--base-port")
    assert {flag for _, flag in ports.values()} == {"--base-port"}


def test_up_help_describes_every_option():
    up = build_parser()._subparsers._group_actions[0].choices["up"]
    for action in up._actions:
        assert action.help and action.help != "==SUPPRESS==", action.dest


def test_banner_prints_the_example_file_as_a_heredoc_in_a_temp_dir(tmp_path):
    plan = plan_cluster(data_dir=tmp_path, base_port=41000, nats_port=41999)
    text = banner(plan, 1.0)
    block = "cat > minilm.yaml <<'YAML'\n" + EXAMPLE_MODEL.read_text() + "YAML\n"
    assert block in text
    assert text.index('cd "$(mktemp -d)"') < text.index("cat > minilm.yaml")
    assert "SIE_ADMIN_TOKEN" not in text
    assert "export SIE_ADMIN_TOKEN=s3cret" in banner(plan, 1.0, "s3cret")


def test_children_get_one_cleaned_environment(tmp_path):
    """Wiring variables never reach a child; tuning passes through only where asked for."""
    from sie_actors.procs import child_env
    mine = {"SIE_NATS_URL": "nats://elsewhere", "SIE_ADMIN_TOKEN": "secret", "POD_NAME": "me",
            "SIE_LOG_LEVEL": "debug", "HOME": "/home/x"}
    isolated = child_env(mine, SIE_BUNDLE="default")
    assert isolated == {"HOME": "/home/x", "PYTHONUNBUFFERED": "1", "SIE_BUNDLE": "default"}
    tuned = child_env(mine, keep_tuning=True)
    assert tuned == {"HOME": "/home/x", "PYTHONUNBUFFERED": "1", "SIE_LOG_LEVEL": "debug"}
    plan = plan_cluster(data_dir=tmp_path, base_port=41000, nats_port=41999, base_env=mine)
    assert plan.config.env["SIE_LOG_LEVEL"] == "debug"
    assert plan.config.env["SIE_NATS_URL"] == "nats://127.0.0.1:41999"
    assert "SIE_ADMIN_TOKEN" not in plan.gateways[0].env
    assert {w.env["POD_NAME"] for w in plan.workers} == {w.name for w in plan.workers}


def test_every_nats_server_runs_jetstream_and_cluster_workers_preload(tmp_path):
    from sie_actors.procs import NatsServer
    plan = plan_cluster(data_dir=tmp_path, base_port=41000, nats_port=41999)
    argv = list(plan.nats.argv)
    assert "-js" in argv and argv[argv.index("-sd") + 1] == str(tmp_path / "nats-js")
    assert "-js" in NatsServer(port=41998, store_dir=tmp_path / "js").argv
    assert all(w.env["SIE_WORKER_PRELOAD"] == "true" for w in plan.workers)

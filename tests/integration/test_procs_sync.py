"""The sync process wrapper (`NatsServer`, `ServiceProcess`, `ManagedProcess`) drives the trio
`Child` through the process portal: from plain sync code, from inside a pytest-trio test (the
fixtures' usual caller), and from a worker thread of a trio loop. Real nats-server and
sie-config / sie-worker processes."""

from __future__ import annotations

import signal
import sys

import psutil
import pytest
import trio

from sie_actors.procs import (LOOPBACK, ChildExited, ManagedProcess, NatsServer, ServiceProcess,
                              port_accepts, wait_until)
from tests.conftest import base_env

pytestmark = pytest.mark.integration


def stopped(pid: int) -> bool:
    return psutil.Process(pid).status() == psutil.STATUS_STOPPED


def test_nats_server_from_plain_sync_code(tmp_path):
    server = NatsServer(log_path=tmp_path / "nats.log", store_dir=tmp_path / "js").start()
    try:
        assert server.alive() and port_accepts(server.port)
        assert server.url == f"nats://{LOOPBACK}:{server.port}"
        first = server.pid
        server.pause()
        wait_until(lambda: stopped(first), 10, what="nats-server stopped")
        server.resume()
        wait_until(lambda: not stopped(first), 10, what="nats-server running again")
        server.restart()  # SIGKILL, the port released, the same port again
        assert server.pid != first and server.alive() and port_accepts(server.port)
        assert server.stop() == 0  # nats-server leaves cleanly on SIGTERM
        assert not server.alive() and server.returncode() == 0
        assert "Server is ready" in server.log_text()
    finally:
        server.kill()


async def test_the_sync_wrapper_inside_a_trio_test(nats_server):
    """What many async tests do: kill and restart the fixture's server synchronously, then talk
    to it from the test's own loop."""
    nats_server.kill()
    assert not nats_server.alive() and nats_server.returncode() == -signal.SIGKILL
    nats_server.start()
    stream = await trio.open_tcp_stream(LOOPBACK, nats_server.port)
    async with stream:
        with trio.fail_after(10):
            assert (await stream.receive_some()).startswith(b"INFO ")
    # and from a worker thread of this loop, as tests that read a stream meanwhile do
    assert await trio.to_thread.run_sync(nats_server.stop) == 0


def test_service_start_raises_with_the_log_tail_when_the_service_exits(tmp_path):
    worker = ServiceProcess("bad-worker", "sie_worker", ["--bundle", "no-such-bundle"],
                            env=base_env(), log_path=tmp_path / "worker.log")
    with pytest.raises(ChildExited, match="unknown bundle 'no-such-bundle'"):
        worker.start(timeout=60)
    assert not worker.alive() and worker.returncode() not in (None, 0)


def test_service_start_times_out_with_the_log_tail(spawn):
    config = spawn("sie_config", base_env())
    with pytest.raises(TimeoutError) as info:
        config.wait_healthy(0.3, "/never-ready")
    message = str(info.value)
    assert f"GET {config.url}/never-ready answering 200" in message
    assert f"Running on {config.url}" in message  # the tail of its log


def test_argv_only_child_without_env_never_inherits_wiring(tmp_path, monkeypatch):
    monkeypatch.setenv("SIE_CONFIG_SERVICE_URL", "http://127.0.0.1:1")
    proc = ManagedProcess("env", [sys.executable, "-c",
                                  "import os; print(os.environ.get('SIE_CONFIG_SERVICE_URL'))"],
                          log_path=tmp_path / "env.log").start()
    wait_until(lambda: not proc.alive(), 20, what="the child to finish")
    assert proc.returncode() == 0 and proc.log_text() == "None\n"

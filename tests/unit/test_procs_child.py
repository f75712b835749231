"""The trio-native child (`sie_actors.procs.Child`) against real `python -c` processes: its own
session and log, both readiness checks, the stop sequence (SIGCONT, SIGTERM, SIGKILL at the
deadline), kill, pause and resume, and the one environment rule."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import trio

from sie_actors.procs import Child, ChildExited, ProcessSpec, child_env, free_port, port_accepts
from sie_actors.procs.polling import wait_for

# Listens on argv[1] and accepts forever; with --ignore-term SIGTERM is ignored, set up before
# the port listens, so "ready" implies "ignores SIGTERM".
LISTENER = """
import signal, socket, sys
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening on", sys.argv[1])
while True:
    sock.accept()[0].close()
"""


def listener(tmp_path: Path, *flags: str) -> Child:
    port = free_port()
    return Child(ProcessSpec("listener", (sys.executable, "-c", LISTENER, str(port), *flags),
                             port=port), tmp_path / "listener.log")


def python(tmp_path: Path, code: str, *, env=None, port: int | None = None) -> Child:
    return Child(ProcessSpec("snippet", (sys.executable, "-c", code), env, port),
                 tmp_path / "snippet.log")


def reaped(pid: int) -> bool:
    """The pid is no child of ours any more (not even a zombie waiting to be reaped)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def status(pid: int) -> str:
    return psutil.Process(pid).status()


@pytest.fixture
async def running(tmp_path):
    child = listener(tmp_path)
    await child.start()
    try:
        await child.wait_ready(30)
        yield child
    finally:
        await child.kill()


async def test_a_child_has_its_own_session_and_log_and_is_ready_when_its_port_accepts(running):
    assert running.alive and running.returncode is None
    assert port_accepts(running.spec.port)
    assert os.getsid(running.pid) == running.pid != os.getsid(0)
    await wait_for(lambda: f"listening on {running.spec.port}" in running.log_tail(), 10,
                   "the child's output in its log")


async def test_starting_a_running_child_is_refused(running):
    with pytest.raises(RuntimeError, match="already running"):
        await running.start()


async def test_the_log_is_appended_across_starts(tmp_path):
    child = python(tmp_path, "print('one run')")
    for _ in range(2):
        await child.start()
        assert await child.wait() == 0
    assert child.log_path.read_text() == "one run\none run\n"
    assert child.log_tail(4) == "run\n"


async def test_stop_is_sigterm_and_reaps(running):
    pid = running.pid
    assert await running.stop(timeout=10) == -signal.SIGTERM
    assert not running.alive and reaped(pid) and not port_accepts(running.spec.port)


async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path):
    child = listener(tmp_path, "--ignore-term")
    await child.start()
    await child.wait_ready(30)
    with trio.fail_after(20):  # bounded: 0.5 s for SIGTERM, then SIGKILL cannot be ignored
        assert await child.stop(timeout=0.5) == -signal.SIGKILL
    assert reaped(child.pid)


async def test_pause_and_resume(running):
    running.pause()
    await wait_for(lambda: status(running.pid) == psutil.STATUS_STOPPED, 10, "stopped")
    running.resume()
    await wait_for(lambda: status(running.pid) != psutil.STATUS_STOPPED, 10, "running again")
    assert running.alive


async def test_a_paused_child_is_continued_before_sigterm(running):
    running.pause()
    await wait_for(lambda: status(running.pid) == psutil.STATUS_STOPPED, 10, "stopped")
    # without the SIGCONT first, the stopped child would sit on SIGTERM until the SIGKILL
    assert await running.stop(timeout=10) == -signal.SIGTERM


async def test_kill_reaps_even_a_paused_child(running):
    pid = running.pid
    running.pause()
    await wait_for(lambda: status(pid) == psutil.STATUS_STOPPED, 10, "stopped")
    assert await running.kill() == -signal.SIGKILL
    assert running.returncode == -signal.SIGKILL and reaped(pid)
    assert await running.kill() == -signal.SIGKILL  # again: nothing left to do


async def test_exiting_before_ready_raises_with_exit_code_and_log_tail(tmp_path):
    child = python(tmp_path, "print('no config for you'); raise SystemExit(3)", port=free_port())
    await child.start()
    with pytest.raises(ChildExited, match="exited with code 3") as info:
        await child.wait_ready(30)
    assert "no config for you" in str(info.value)


async def test_http_readiness_and_a_timeout_that_carries_the_log_tail(tmp_path):
    port = free_port()
    child = Child(ProcessSpec("http", (sys.executable, "-m", "http.server", "--bind",
                                       "127.0.0.1", "--directory", str(tmp_path), str(port)),
                              port=port, ready_path="/"), tmp_path / "http.log")
    await child.start()
    try:
        await child.wait_ready(30)
        child.spec = dataclasses.replace(child.spec, ready_path="/not-there")
        async with httpx.AsyncClient() as client:  # so the log surely shows a /not-there line
            assert (await client.get(child.spec.url + "/not-there")).status_code == 404
        with pytest.raises(TimeoutError, match="not ready after 0.3s") as info:
            await child.wait_ready(0.3)
        assert f"GET {child.spec.url}/not-there answering 200" in str(info.value)
        assert '"GET /not-there HTTP/1.1" 404' in str(info.value)  # from the log's tail
    finally:
        await child.stop()


PRINT_ENV = ("import os; print(sorted(k for k in os.environ "
             "if k.startswith('SIE_') or k in ('POD_NAME', 'PYTHONUNBUFFERED')))")


async def test_without_an_env_a_child_gets_child_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SIE_NATS_URL", "nats://127.0.0.1:1")  # wiring: never inherited
    monkeypatch.setenv("POD_NAME", "us")
    monkeypatch.setenv("SIE_LOG_LEVEL", "debug")  # tuning: only with keep_tuning
    bare = python(tmp_path, PRINT_ENV)
    await bare.start()
    assert await bare.wait() == 0
    tuned = python(tmp_path, PRINT_ENV, env=child_env(keep_tuning=True))
    await tuned.start()
    assert await tuned.wait() == 0
    assert bare.log_path.read_text().splitlines() == [
        "['PYTHONUNBUFFERED']", "['PYTHONUNBUFFERED', 'SIE_LOG_LEVEL']"]


async def test_a_pipes_child_talks_over_stdin_and_stdout(tmp_path):
    child = Child(ProcessSpec("echo", (sys.executable, "-c",
                                       "import sys; print(sys.stdin.readline().upper(), end='')")),
                  tmp_path / "echo.log", pipes=True)
    await child.start()
    await child.process.stdin.send_all(b"hello\n")
    answer = b""
    with trio.fail_after(20):
        while not answer.endswith(b"\n"):
            answer += await child.process.stdout.receive_some()
    assert answer == b"HELLO\n" and await child.wait() == 0

"""NatsLink against a real nats-server: delivery, confirmation, reconnect, unsubscribe."""

from __future__ import annotations

import subprocess
import sys
import functools
import threading

import pytest
import trio

from sie_actors.nats.link import NatsLink, NatsSettings, NotConnected
from sie_actors.procs.polling import wait_for

pytestmark = pytest.mark.integration


async def linked(nursery, url: str, name: str) -> NatsLink:
    link = NatsLink(NatsSettings(url=url, name=name, ping_interval=1.0))
    await nursery.start(link.run)
    await wait_for(lambda: link.connected, 10, f"{name} connected")
    return link


async def test_publish_subscribe_once_each(nats_server, nursery):
    a = await linked(nursery, nats_server.url, "a")
    b = await linked(nursery, nats_server.url, "b")
    first = await a.subscribe("t.x")
    report = await b.publish_confirmed([("t.x", b"1")])
    assert report.all_confirmed
    with trio.fail_after(5):
        assert await first.receive() == b"1"
    # a consumer that closes its channel and subscribes again gets each message exactly once
    await first.aclose()
    await b.publish_confirmed([("t.x", b"2")])  # finds the closed channel: unsubscribes
    second = await a.subscribe("t.x")
    await b.publish_confirmed([("t.x", b"3"), ("t.x", b"4")])
    with trio.fail_after(5):
        assert [await second.receive(), await second.receive()] == [b"3", b"4"]
    with trio.move_on_after(0.3):
        extra = await second.receive()
        pytest.fail(f"unexpected duplicate delivery {extra!r}")


async def test_a_returned_subscription_sees_the_very_next_publish(nats_server, nursery):
    # nats-py's flush() PING can overtake a SUB or PUB still in its buffer; subscribe and
    # publish_confirmed must not return before the server has processed theirs.
    a = await linked(nursery, nats_server.url, "a")
    b = await linked(nursery, nats_server.url, "b")
    missed = []
    for i in range(200):
        receive = await a.subscribe(f"t.next.{i}")
        assert (await b.publish_confirmed([(f"t.next.{i}", b"%d" % i)])).all_confirmed
        with trio.move_on_after(2):
            assert await receive.receive() == b"%d" % i
            continue
        missed.append(i)
    assert missed == []


async def test_run_with_client_reaches_the_rest_of_nats_py(nats_server, nursery):
    link = await linked(nursery, nats_server.url, "door")

    async def echo(msg):
        await msg.respond(msg.data + b"!")

    async def round_trip(client, subject):
        assert threading.current_thread().name == "sie-asyncio"
        replies = await client.subscribe(subject, cb=echo)
        try:
            return (await client.request(subject, b"ping", timeout=2)).data
        finally:
            await replies.unsubscribe()

    assert await link.run_with_client(round_trip, "t.door") == b"ping!"
    nats_server.kill()
    await wait_for(lambda: not link.connected, 10, "disconnect noticed")
    with pytest.raises(NotConnected):
        await link.run_with_client(round_trip, "t.door")


async def test_start_from_thread_sends_from_a_foreign_thread_without_waiting(nats_server,
                                                                              nursery):
    """The model host's door: started from a plain thread, run on the loop, not awaited;
    False (nothing started) once there is no connection."""
    link = await linked(nursery, nats_server.url, "host")
    received = await link.subscribe("t.host")
    ran_on: list[str] = []

    async def send(client, data):
        ran_on.append(threading.current_thread().name)
        await client.publish("t.host", data)

    started = await trio.to_thread.run_sync(link.start_from_thread, send, b"from a thread")
    assert started is True
    with trio.fail_after(5):
        assert await received.receive() == b"from a thread"
    assert ran_on == ["sie-asyncio"]

    async def broken(client, data):
        await client.publish("t.host", data)
        raise RuntimeError("after the send")

    for fn in (send, broken):     # `after` runs on the loop once it ended, either way
        def after(fn=fn):
            ran_on.append(f"after {fn.__name__} on {threading.current_thread().name}")
        assert await trio.to_thread.run_sync(
            functools.partial(link.start_from_thread, fn, b"x", after=after))
        with trio.fail_after(5):
            assert await received.receive() == b"x"
        await wait_for(lambda: ran_on[-1].startswith(f"after {fn.__name__}"), 5, "after ran")
    assert ran_on[1:] == ["sie-asyncio", "after send on sie-asyncio",
                          "after broken on sie-asyncio"]
    del ran_on[1:]
    nats_server.kill()
    await wait_for(lambda: not link.connected, 10, "disconnect noticed")
    assert await trio.to_thread.run_sync(link.start_from_thread, send, b"lost") is False
    assert ran_on == ["sie-asyncio"]


async def test_start_from_thread_on_the_loops_own_thread_creates_the_task_at_once(nats_server,
                                                                                 nursery):
    """A one-item batch computed on the loop's thread sends its reply from there: the task is
    created on the spot (no wake-up of the loop by itself, no turn lost)."""
    import asyncio
    link = await linked(nursery, nats_server.url, "own")
    received = await link.subscribe("t.own")
    seen: dict = {}

    async def send(client, data):
        await client.publish("t.own", data)

    async def from_the_loop(_client):
        before = len(asyncio.all_tasks())
        seen["started"] = link.start_from_thread(
            send, b"own", after=lambda: seen.setdefault("after", threading.current_thread().name))
        seen["new tasks"] = len(asyncio.all_tasks()) - before

    await link.run_with_client(from_the_loop)
    with trio.fail_after(5):
        assert await received.receive() == b"own"
    await wait_for(lambda: "after" in seen, 5, "after ran")
    assert seen == {"started": True, "new tasks": 1, "after": "sie-asyncio"}


async def test_nothing_confirmed_while_server_is_down(nats_server, nursery):
    link = await linked(nursery, nats_server.url, "p")
    reconnects = link.reconnect_events()
    nats_server.kill()
    await wait_for(lambda: not link.connected, 10, "disconnect noticed")
    report = await link.publish_confirmed([("t.y", b"lost")])
    assert report.none_confirmed
    nats_server.start()
    with trio.fail_after(15):
        count = await reconnects.receive()
    assert count >= 2 and link.connected
    assert (await link.publish_confirmed([("t.y", b"ok")])).all_confirmed


async def test_a_late_pong_after_a_pause_does_not_break_the_connection(nats_server, nursery):
    # A flush that timed out must not be cancelled inside nats-py: its PONG arrives when the
    # server resumes, and nats-py's reader dies on a cancelled future. The long ping interval
    # means no reconnect would rescue a dead reader within this test.
    link = NatsLink(NatsSettings(url=nats_server.url, name="late-pong", ping_interval=30.0,
                                 flush_timeout=0.3))
    await nursery.start(link.run)
    await wait_for(lambda: link.connected, 10, "connected")
    receive = await link.subscribe("t.pong")
    count = link.connect_count
    nats_server.pause()
    try:
        assert (await link.publish_confirmed([("t.pong", b"during")])).none_confirmed
    finally:
        nats_server.resume()
    with trio.fail_after(5):
        assert await receive.receive() == b"during"  # buffered, sent when the server resumed
    assert (await link.publish_confirmed([("t.pong", b"after")])).all_confirmed
    with trio.fail_after(5):
        assert await receive.receive() == b"after"
    assert link.connect_count == count  # the same connection kept working


async def test_connects_when_server_appears_later(nursery, tmp_path):
    from sie_actors.procs import NatsServer
    server = NatsServer(log_path=tmp_path / "late.log")
    link = NatsLink(NatsSettings(url=server.url, name="late"))
    await nursery.start(link.run)  # starts while nothing listens
    assert not link.connected
    server.start()
    try:
        await wait_for(lambda: link.connected, 15, "late connect")
    finally:
        server.kill()


async def test_cancelled_run_leaves_no_loop_thread(nats_server):
    link = NatsLink(NatsSettings(url=nats_server.url, name="gone"))
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        await wait_for(lambda: link.connected, 10, "connected")
        await link.subscribe("t.gone")
        assert any(t.name == "sie-asyncio" for t in threading.enumerate())
        nursery.cancel_scope.cancel()
    assert [t.name for t in threading.enumerate() if t.name == "sie-asyncio"] == []
    assert not link.connected


# Runs in a fresh interpreter so that whatever asyncio prints at loop close or at exit (pending
# tasks destroyed, unretrieved exceptions, unclosed transports) reaches its stderr.
SHUTDOWN_SCRIPT = """
import sys, threading, trio
from sie_actors.nats.link import NatsLink, NatsSettings, NotConnected

async def main(url):
    a = NatsLink(NatsSettings(url=url, name="a"))
    b = NatsLink(NatsSettings(url=url, name="b"))
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        with trio.fail_after(10):
            while not (a.connected and b.connected):
                await trio.sleep(0.01)
        stuck = await a.subscribe("t.full", buffer=1)   # never read: its callback is left waiting
        idle = await a.subscribe("t.idle")
        report = await b.publish_confirmed([("t.full", b"%d" % i) for i in range(5)])
        assert report.all_confirmed, report
        with trio.fail_after(10):
            while stuck.statistics().current_buffer_used < 1:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    # trio keeps idle worker threads of its own (named "Trio thread N") for a while: not ours
    print("threads:", sorted(t.name for t in threading.enumerate()
                             if not t.name.startswith("Trio thread")), flush=True)

trio.run(main, sys.argv[1])
"""


def test_shutdown_with_a_callback_waiting_is_silent_and_leaves_no_thread(nats_server):
    done = subprocess.run([sys.executable, "-X", "dev", "-c", SHUTDOWN_SCRIPT, nats_server.url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "threads: ['MainThread']" in done.stdout, done.stdout + done.stderr
    for noise in ("Task was destroyed", "Traceback", "InvalidStateError", "Exception ignored",
                  "never retrieved", "Unclosed", "ResourceWarning", "DeprecationWarning"):
        assert noise not in done.stderr, done.stderr

"""NatsLink against a real nats-server: delivery, confirmation, reconnect, unsubscribe."""

from __future__ import annotations

import pytest
import trio

from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.testing.waiting import wait_for

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

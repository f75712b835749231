"""The gateway's inference port as an HTTP/1.1 server: real loopback sockets, a stand-in route.

What a client sends is written out byte by byte here (no client library would send the bad
requests), and answers are read back the same way.
"""

from __future__ import annotations

import json

import pytest
import trio

from sie_actors.http.fastpath import Answer
from sie_actors.http.metrics import ServiceMetrics
from sie_actors.procs import wait_for
from sie_gateway import inference_port
from sie_gateway.inference_port import Limits


class Route:
    """Stands in for `EncodeRoute.answer`: echoes what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, bytes]] = []
        self.fail = False

    async def answer(self, spec, headers, body) -> Answer:
        self.calls.append((spec, headers.get("Content-Type"), body))
        if self.fail:
            raise RuntimeError("boom")
        return Answer(200, json.dumps({"spec": spec, "size": len(body)}).encode(),
                      headers=(("x-sie-request-id", "r1"),))


class Peer:
    """One client connection: raw bytes out, responses parsed from raw bytes in."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _more(self) -> bool:
        with trio.fail_after(10):
            chunk = await self.stream.receive_some(65536)
        self.buffer += chunk
        return bool(chunk)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert await self._more(), f"closed before a response: {self.buffer!r}"
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers.get("content-length", 0))
        while len(self.buffer) < size:
            assert await self._more(), "closed inside a body"
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return status, headers, body

    async def closed(self) -> bool:
        """True once the server has closed the connection (EOF), within the deadline."""
        while await self._more():
            pass
        return True


def post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: gw", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Listener:
    """The inference port on a free loopback port, in the test's nursery."""

    def __init__(self, port: int, metrics: ServiceMetrics, shutdown: trio.Event) -> None:
        self.port, self.metrics, self.shutdown = port, metrics, shutdown

    @classmethod
    async def start(cls, nursery, handler, limits: Limits) -> "Listener":
        metrics, shutdown = ServiceMetrics("sie_gateway"), trio.Event()
        url = await nursery.start(inference_port.serve, handler, metrics, limits, "127.0.0.1",
                                  0, shutdown)
        return cls(int(url.rsplit(":", 1)[1]), metrics, shutdown)

    async def connect(self) -> Peer:
        return Peer(await trio.open_tcp_stream("127.0.0.1", self.port))


@pytest.fixture
async def server(nursery):
    route = Route()
    listener = await Listener.start(nursery, route.answer,
                                    Limits(max_body=1000, keep_alive_s=30, read_s=0.5))
    yield route, listener.metrics, listener.connect, listener.shutdown
    listener.shutdown.set()


async def test_requests_on_one_kept_alive_connection(server):
    route, metrics, connect, _ = server
    peer = await connect()
    for i in range(3):
        sent = b'{"items": [%d]}' % (10 ** i)
        await peer.send(post("/v1/encode/acme/minilm", sent))
        status, headers, body = await peer.response()
        assert status == 200 and json.loads(body) == {"spec": "acme/minilm", "size": len(sent)}
        assert headers["content-type"] == "application/json"
        assert headers["x-sie-request-id"] == "r1"
    assert [c[0] for c in route.calls] == ["acme/minilm"] * 3
    assert route.calls[0][1] == "application/json"
    # counted after each answer is sent, under the main port's names
    await wait_for(lambda: metrics.registry.get_sample_value(
        "sie_gateway_http_requests_total",
        {"method": "POST", "path": "/v1/encode/<path:spec>", "status": "200"}) == 3,
        5, what="three requests counted")


async def test_the_path_is_percent_decoded_as_hypercorn_does(server):
    route, _, connect, _ = server
    peer = await connect()
    await peer.send(post("/v1/encode/default%3A/acme/minilm?x=1", b"{}"))
    status, _, body = await peer.response()
    assert status == 200 and json.loads(body)["spec"] == "default:/acme/minilm"


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /v1/encode/acme/minilm HTTP/1.1\r\nHost: gw\r\n\r\n", 405),
    (post("/v1/configs/models", b"{}"), 404),
    (post("/v1/encode/", b"{}"), 404),
    (post("/v1/encode//acme", b"{}"), 404),
    (b"NOT A REQUEST\r\n\r\n", 400),
    (b"POST /v1/encode/a/b HTTP/1.1\r\nHost: gw\r\nContent-Length: x\r\n\r\n", 400),
    # a head still incomplete past 16 KiB (h11's limit, as on hypercorn's port)
    (b"POST /v1/encode/a/b HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"b" * 20_000, 431),
])
async def test_what_is_not_an_encode_request_is_refused_and_closed(server, request_bytes,
                                                                   status):
    route, metrics, connect, _ = server
    peer = await connect()
    await peer.send(request_bytes)
    got, headers, body = await peer.response()
    assert got == status, body
    assert "detail" in json.loads(body)
    assert await peer.closed()
    assert route.calls == []
    assert metrics.registry.get_sample_value(
        "sie_gateway_http_requests_total",
        {"method": "OTHER" if status in (400, 431) else request_bytes.split(b" ")[0].decode(),
         "path": "<unmatched>", "status": str(got)}) == 1


async def test_a_body_over_the_limit_is_413_before_it_is_read(server):
    route, _, connect, _ = server
    peer = await connect()
    await peer.send(post("/v1/encode/a/b", b"x" * 1001))
    status, headers, body = await peer.response()
    assert status == 413 and headers["x-sie-error-code"] == "PAYLOAD_TOO_LARGE"
    assert "1000 bytes" in json.loads(body)["detail"]["message"]
    assert await peer.closed()
    assert route.calls == []


async def test_a_chunked_body_is_read_and_limited(server):
    route, _, connect, _ = server
    peer = await connect()
    head = b"POST /v1/encode/a/b HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
    await peer.send(head + b"5\r\nhello\r\n0\r\n\r\n")
    status, _, body = await peer.response()
    assert status == 200 and json.loads(body)["size"] == 5
    await peer.send(head + b"".join(b"1f4\r\n" + b"y" * 500 + b"\r\n" for _ in range(3)))
    status, _, _ = await peer.response()
    assert status == 413 and await peer.closed()
    assert len(route.calls) == 1


async def test_expect_100_continue_is_answered_before_the_body(server):
    route, _, connect, _ = server
    peer = await connect()
    await peer.send(b"POST /v1/encode/a/b HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n"
                    b"Expect: 100-continue\r\n\r\n")
    status, _, _ = await peer.response()
    assert status == 100
    await peer.send(b"body")
    status, _, body = await peer.response()
    assert status == 200 and json.loads(body)["size"] == 4


async def test_a_request_that_does_not_arrive_whole_in_time_is_408(server):
    route, _, connect, _ = server
    peer = await connect()
    await peer.send(post("/v1/encode/a/b", b"{}").replace(b"Content-Length: 2",
                                                          b"Content-Length: 10"))
    status, _, _ = await peer.response()       # read_s is 0.5 s in this fixture
    assert status == 408 and await peer.closed()
    assert route.calls == []


async def test_a_failing_route_is_a_json_500_and_the_connection_lives_on(server):
    route, metrics, connect, _ = server
    route.fail = True
    peer = await connect()
    await peer.send(post("/v1/encode/a/b", b"{}"))
    status, _, body = await peer.response()
    assert status == 500 and json.loads(body)["detail"]["error"] == "internal_error"
    route.fail = False
    await peer.send(post("/v1/encode/a/b", b"{}"))
    status, _, _ = await peer.response()
    assert status == 200


async def test_an_idle_connection_is_closed_after_the_keep_alive_time(nursery):
    listener = await Listener.start(nursery, Route().answer,
                                    Limits(max_body=10, keep_alive_s=0.2))
    peer = await listener.connect()
    await peer.send(post("/v1/encode/a/b", b"{}"))
    assert (await peer.response())[0] == 200
    assert await peer.closed()                 # without sending anything more
    # the listener itself lives on
    fresh = await listener.connect()
    await fresh.send(post("/v1/encode/a/b", b"{}"))
    assert (await fresh.response())[0] == 200
    listener.shutdown.set()


async def test_a_stop_lets_the_request_in_flight_finish_and_refuses_new_ones(nursery):
    entered, release = trio.Event(), trio.Event()

    async def slow(spec, headers, body) -> Answer:
        entered.set()
        await release.wait()
        return Answer(200, b"{}")

    listener = await Listener.start(nursery, slow, Limits(max_body=10))
    peer = await listener.connect()
    await peer.send(post("/v1/encode/a/b", b"{}"))
    await entered.wait()
    listener.shutdown.set()

    async def refused() -> bool:
        try:
            await (await listener.connect()).stream.aclose()
        except OSError:
            return True
        return False

    await wait_for(refused, 5, what="the listener closed")
    release.set()
    assert (await peer.response())[0] == 200


async def test_a_bug_costs_one_connection_not_the_listener(nursery):
    answers = [object(), Answer(200, b"{}")]     # the first is not an Answer: a bug

    async def buggy(spec, headers, body):
        return answers.pop(0)

    listener = await Listener.start(nursery, buggy, Limits(max_body=10))
    broken = await listener.connect()
    await broken.send(post("/v1/encode/a/b", b"{}"))
    assert await broken.closed() and broken.buffer == b""
    fresh = await listener.connect()
    await fresh.send(post("/v1/encode/a/b", b"{}"))
    assert (await fresh.response())[0] == 200
    listener.shutdown.set()

"""The gateway's inference port: `POST /v1/encode/{[bundle:/]org/model}` on a lean HTTP/1.1
listener (h11 on trio sockets), beside hypercorn's port, which keeps serving everything.

Why a second listener: hypercorn's per-request machinery (a task per request, its keep-alive
task stopped and restarted per request, a locked and shielded socket send per event) is the
largest part of a one-item encode's overhead that is not the queue's. Measured on this
project's 2-core machine, the same gateway answered one-item encodes 0.33-0.65 ms sooner (p50,
alternating blocks of 50, three runs) through a listener like this one than through hypercorn,
on a budget of 3 ms. The encode route needs none of that machinery: one route, HTTP/1.1, a
bounded body, one answer per request. Control-plane and data-plane ports are a common split
for inference servers; this one is opt-in (`SIE_GATEWAY_INFERENCE_PORT`).

The answers are `EncodeRoute`'s, the same bytes as on hypercorn's port (a test sends the same
requests to every door of the route); only the transport is ours. h11 does the protocol (parsing, framing,
keep-alive, `Expect: 100-continue`); this module adds only what a server needs around it:
limits (head size, body size, a deadline to read a request, a keep-alive idle timeout), the
status for each kind of bad request, metrics under the same names, and a graceful stop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Awaitable, Callable
from urllib.parse import unquote

import h11
import trio
from werkzeug.datastructures import Headers

from sie_actors.http.app import internal_error_detail
from sie_actors.http.fastpath import Answer, headers_of, route_rest
from sie_actors.http.metrics import ServiceMetrics

from sie_gateway.encode import body_too_large, detail_answer

log = logging.getLogger("sie_gateway.inference_port")

PREFIX = "/v1/encode/"
RULE = "/v1/encode/<path:spec>"
RECEIVE_SIZE = 65536
CLOSE = {"Connection": "close"}
# `handler(spec, headers, body)`: the whole answer to one encode request (`EncodeRoute.answer`).
Handler = Callable[[str, Headers, bytes], Awaitable[Answer]]


@dataclass(frozen=True)
class Limits:
    max_body: int
    max_head: int = 16 * 1024        # request line and headers (h11's own default)
    keep_alive_s: float = 30.0       # an idle kept-alive connection is closed after this
    read_s: float = 60.0             # a request must arrive whole within this of its first byte
    graceful_s: float = 2.0          # in-flight requests get this long at a stop


class _Close(Exception):
    """The connection is over (closed by the peer, timed out, or answered with a close)."""


async def serve(handler: Handler, metrics: ServiceMetrics, limits: Limits, host: str, port: int,
                shutdown: trio.Event, *,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until `shutdown` is set, then let in-flight requests finish (`graceful_s`)."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    async with trio.open_nursery() as connections:
        async with trio.open_nursery() as accepting:
            accepting.start_soon(partial(
                trio.serve_listeners, partial(_connection, handler=handler, metrics=metrics,
                                              limits=limits),
                listeners, handler_nursery=connections))
            task_status.started(f"http://{bound[0]}:{bound[1]}")
            await shutdown.wait()
            accepting.cancel_scope.cancel()
        connections.cancel_scope.deadline = trio.current_time() + limits.graceful_s


async def _connection(stream: trio.SocketStream, handler: Handler, metrics: ServiceMetrics,
                      limits: Limits) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)
    try:
        async with stream:
            while True:
                await _one_request(conn, stream, handler, metrics, limits)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
    except (_Close, trio.BrokenResourceError):
        pass                          # over, or the client went away: nobody to answer
    except Exception:                 # a bug here must cost one connection, not the listener
        log.exception("inference port: a connection failed")


async def _one_request(conn: h11.Connection, stream: trio.SocketStream, handler: Handler,
                       metrics: ServiceMetrics, limits: Limits) -> None:
    method, rule, path, started, request = "OTHER", None, "", None, None
    try:
        with trio.move_on_after(limits.keep_alive_s):
            request = await _next_event(conn, stream)
        if not isinstance(request, h11.Request):
            raise _Close()           # idle timeout, or the client closed between requests
        started = time.perf_counter()
        method = request.method.decode("ascii")
        with trio.move_on_after(limits.read_s) as reading:
            ready = await _read(conn, stream, request, limits)
        if reading.cancelled_caught:
            answer = detail_answer(408, "the request did not arrive whole in time", CLOSE)
        elif isinstance(ready, Answer):
            answer = ready
        else:
            path, spec, headers, body = ready
            rule = RULE
            try:
                answer = await handler(spec, headers, body)
            except Exception as exc:  # the same safety net as hypercorn's port: a JSON 500
                log.exception("unhandled error on POST %s", path)
                answer = detail_answer(500, internal_error_detail(exc))
    except h11.RemoteProtocolError as exc:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            raise _Close() from None
        answer = detail_answer(exc.error_status_hint, f"bad request: {exc}", CLOSE)
    try:
        await _send(conn, stream, answer)
    finally:                          # the refusals that close the connection count too
        metrics.observe_request(method, rule, path, answer.status,
                                None if started is None else time.perf_counter() - started)


async def _read(conn: h11.Connection, stream: trio.SocketStream, request: h11.Request,
                limits: Limits) -> tuple[str, str, Headers, bytes] | Answer:
    """The rest of an encode request: (path, spec, headers, body), or the answer that refuses
    it without reading its body (the connection then closes)."""
    # the path as hypercorn gives it to an app: percent-decoded, query string apart
    path = unquote(request.target.partition(b"?")[0].decode("ascii"))
    spec = route_rest(path, PREFIX)
    if spec is None:
        return detail_answer(404, f"not found: this port serves only POST {PREFIX}{{model}}",
                             CLOSE)
    if request.method != b"POST":
        return detail_answer(405, "method not allowed: use POST", {"Allow": "POST", **CLOSE})
    headers = headers_of(request.headers)
    length = headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limits.max_body:
        return body_too_large(limits.max_body)
    if conn.they_are_waiting_for_100_continue:
        await stream.send_all(conn.send(h11.InformationalResponse(status_code=100,
                                                                  headers=[])))
    body = bytearray()
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > limits.max_body:
                return body_too_large(limits.max_body)
        elif isinstance(event, h11.EndOfMessage):
            return path, spec, headers, bytes(body)
        else:
            raise _Close()            # the client closed before its body ended


async def _next_event(conn: h11.Connection, stream: trio.SocketStream):
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(RECEIVE_SIZE))


async def _send(conn: h11.Connection, stream: trio.SocketStream, answer: Answer) -> None:
    """Head and body in one write: one wake-up of the client, not two."""
    headers = [("Content-Type", answer.content_type),
               ("Content-Length", str(len(answer.body))), *answer.headers]
    data = conn.send(h11.Response(status_code=answer.status, headers=headers))
    data += conn.send(h11.Data(data=answer.body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)
    if conn.our_state is h11.MUST_CLOSE:
        raise _Close()

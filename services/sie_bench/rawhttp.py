"""A small HTTP/1.1 keep-alive GET client on trio, for polling with little client-side CPU.

Polling a gateway as fast as it answers with httpx costs the benchmark's process about as much
CPU as the request costs the gateway; on a 2-core machine that steals time from the services
being measured. This client keeps one connection and lets h11 (the protocol as a pure state
machine, already installed with hypercorn) frame requests and responses, so chunked bodies,
`Connection: close` and a peer that hangs up are handled as HTTP says, not by substring search.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import h11
import trio


class RawHTTP:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._stream: trio.SocketStream | None = None
        self._conn = h11.Connection(h11.CLIENT)

    async def __aenter__(self) -> "RawHTTP":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """`GET path` → (status, body); one reconnect if the kept-alive connection was closed."""
        for attempt in (0, 1):
            if self._stream is None or self._conn.our_state is not h11.IDLE:
                await self.aclose()
                self._stream = await trio.open_tcp_stream(self.host, self.port)
                self._conn = h11.Connection(h11.CLIENT)
            try:
                return await self._exchange(path)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError,
                    h11.RemoteProtocolError):
                await self.aclose()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, path: str) -> tuple[int, bytes]:
        request = h11.Request(method="GET", target=path,
                              headers=[("Host", f"{self.host}:{self.port}")])
        await self._stream.send_all(self._conn.send(request) + self._conn.send(h11.EndOfMessage()))
        status, body = 0, bytearray()
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await self._stream.receive_some(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self._conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is h11.MUST_CLOSE:
            await self.aclose()
        else:
            self._conn.start_next_cycle()
        return status, bytes(body)


async def served(http: RawHTTP, path: str, pause: float = 0.0) -> None:
    """Until `GET path` answers 200; `pause` 0 polls back to back (one round trip resolution)."""
    while (await http.get(path))[0] != 200:
        if pause:
            await trio.sleep(pause)

"""A small HTTP/1.1 keep-alive client on trio, for polling and timing with little client-side CPU.

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
        status, _headers, body = await self.request("GET", path)
        return status, body

    async def post(self, path: str, body: bytes, content_type: str = "application/json"
                   ) -> tuple[int, dict[str, str], bytes]:
        """`POST path` → (status, headers with lower-case names, body)."""
        return await self.request("POST", path, body, [("Content-Type", content_type)])

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: list[tuple[str, str]] | None = None,
                      ) -> tuple[int, dict[str, str], bytes]:
        """One exchange; one reconnect if the kept-alive connection was closed (a POST too:
        the benchmark's requests are idempotent)."""
        for attempt in (0, 1):
            if self._stream is None or self._conn.our_state is not h11.IDLE:
                await self.aclose()
                self._stream = await trio.open_tcp_stream(self.host, self.port)
                self._conn = h11.Connection(h11.CLIENT)
            try:
                return await self._exchange(method, path, body, headers or [])
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError,
                    h11.RemoteProtocolError):
                await self.aclose()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, content: bytes,
                        headers: list[tuple[str, str]]) -> tuple[int, dict[str, str], bytes]:
        fields = [("Host", f"{self.host}:{self.port}"), *headers]
        if method != "GET":
            fields.append(("Content-Length", str(len(content))))
        request = h11.Request(method=method, target=path, headers=fields)
        data = self._conn.send(request)
        if content:
            data += self._conn.send(h11.Data(data=content))
        await self._stream.send_all(data + self._conn.send(h11.EndOfMessage()))
        status, response_headers, body = 0, {}, bytearray()
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                chunk = await self._stream.receive_some(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self._conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode("latin1"): v.decode("latin1")
                                    for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is h11.MUST_CLOSE:
            await self.aclose()
        else:
            self._conn.start_next_cycle()
        return status, response_headers, bytes(body)


async def served(http: RawHTTP, path: str, pause: float = 0.0) -> None:
    """Until `GET path` answers 200; `pause` 0 polls back to back (one round trip resolution)."""
    while (await http.get(path))[0] != 200:
        if pause:
            await trio.sleep(pause)

"""A minimal HTTP/1.1 keep-alive GET client on trio, for polling with little client-side CPU.

Polling a gateway as fast as it answers with httpx costs the benchmark's process about as much
CPU as the request costs the gateway; on a 2-core machine that steals time from the services
being measured. This client sends a pre-encoded request and frames the answer by Content-Length,
nothing more (our services always send Content-Length).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import trio


class RawHTTP:
    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._stream: trio.SocketStream | None = None
        self._buffer = bytearray()

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
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        for attempt in (0, 1):
            if self._stream is None:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
                self._buffer.clear()
            try:
                await self._stream.send_all(request)
                return await self._response()
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
                await self.aclose()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _fill(self) -> None:
        chunk = await self._stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buffer += chunk

    async def _response(self) -> tuple[int, bytes]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(self._buffer[:end]).lower()
        status = int(head[9:12])
        marker = head.find(b"content-length:")
        length = int(head[marker + 15:head.find(b"\r\n", marker) if head.find(b"\r\n", marker) >= 0
                          else len(head)]) if marker >= 0 else 0
        total = end + 4 + length
        while len(self._buffer) < total:
            await self._fill()
        body = bytes(self._buffer[end + 4:total])
        del self._buffer[:total]
        if b"connection: close" in head:
            await self.aclose()
        return status, body

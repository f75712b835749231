"""EpochPollerActor: the backstop that notices what deltas did not say.

It reads sie-config's `/v1/configs/epoch` every `interval` seconds and at once after every NATS
(re)connect (CONTRACT §2 item 2: messages published while we were disconnected are gone), and
hands what it saw to the mirror, which decides whether that is drift. A failed poll changes
nothing; the next one tries again.
"""

from __future__ import annotations

import logging

import httpx
import trio

from sie_actors.domain.errors import ParseError
from sie_actors.domain.sync import EpochReport
from sie_actors.http.auth import auth_headers
from sie_actors.runtime import Actor, ActorRef

from sie_gateway.mirror import EpochObserved

log = logging.getLogger("sie_gateway.poller")


class PollNow:
    """Ask for a poll before the next tick (sent after a NATS reconnect)."""


class EpochPollerActor(Actor):
    def __init__(self, mirror: ActorRef, *, config_url: str, token: str | None,
                 interval: float, timeout: float = 5.0, reconnects=None, metrics=None,
                 mailbox=None) -> None:
        super().__init__(mailbox=mailbox, name="poller")
        self.mirror = mirror
        self.config_url = config_url
        self.headers = auth_headers(token)
        self.interval = interval
        self.timeout = timeout
        self.reconnects = reconnects  # receive channel of NATS connect counts, or None
        self.metrics = metrics
        self._client: httpx.AsyncClient | None = None

    async def on_start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.config_url, headers=self.headers,
                                         timeout=self.timeout)

    async def on_stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def background(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._tick)
        if self.reconnects is not None:
            nursery.start_soon(self._on_reconnect)

    async def _tick(self) -> None:
        while True:
            await trio.sleep(self.interval)
            await self.ref.tell(PollNow())

    async def _on_reconnect(self) -> None:
        async for _count in self.reconnects:
            await self.ref.tell(PollNow())

    async def handle(self, message) -> object:
        if not isinstance(message, PollNow):
            raise TypeError(f"poller: unexpected message {message!r}")
        if self.ref.mailbox.pending:
            return None  # another poll is queued right behind this one: let it do the work
        try:
            response = await self._client.get("/v1/configs/epoch")
            if response.status_code != 200:
                raise ParseError(f"HTTP {response.status_code}")
            report = EpochReport.parse(response.content)
        except (httpx.HTTPError, ParseError) as exc:
            log.debug("epoch poll failed: %r", exc)
            if self.metrics is not None:
                self.metrics.poll_failures.inc()
            return None
        await self.mirror.tell(EpochObserved(report))
        return None

"""A nats-py client, kept connected and exposed to trio code.

nats-py is asyncio-only, and everything else in this project is trio. `NatsLink.run` leases the
process's asyncio loop thread through `sie_actors.aio.bridge`, keeps a client connected on it
under a bounded-attempt connect loop, and turns the client's asyncio callbacks into trio-side
facts: a `connected` flag, a counter of (re)connects, and memory channels of received messages.
Other trio tasks call `publish_confirmed` and `subscribe`; every nats-py call goes through
`bridge.run`, every callback comes back through `bridge.call_trio` / `bridge.feed`, so the
client's own state is only ever touched on the loop thread and ours only on the trio thread.

Why the connect loop is ours and not nats-py's: nats-py's initial `connect()` retries for minutes
when the server is down (and forever with `max_reconnect_attempts=-1`), so a service would never
start. We bound each attempt with a trio deadline, back off, and try again in the background while
the service already serves. After the first success nats-py's own reconnect logic takes over.

Why publishing is "confirmed": `publish()` only appends to a buffer, and a message appended just
before a connection loss is dropped silently. A bounded `flush()` (PING/PONG) proves the bytes
reached the server, but returns at once while reconnecting, so `is_connected` is checked both
before publishing and after the flush. The whole batch (publishes and flush) is one coroutine on
the loop: one trip across threads per batch, not one per message.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import nats
import nats.errors
import trio

from sie_actors.aio.bridge import AsyncioBridge, BridgeClosed, open_asyncio_bridge
from sie_actors.aio.detached import wait_detached
from sie_actors.runtime.backoff import Backoff

log = logging.getLogger("sie_actors.nats")
T = TypeVar("T")


class NotConnected(Exception):
    """There is no connected NATS client right now (the link reconnects in the background)."""


@dataclass(frozen=True)
class NatsSettings:
    url: str
    name: str = "sie-actors"
    # A paused server sends no TCP reset: only missed PINGs reveal it. With 2 s and 2 outstanding
    # pings a silent partition is noticed in about 4-6 s (nats-py's default would take minutes).
    ping_interval: float = 2.0
    max_outstanding_pings: int = 2
    connect_timeout: float = 2.0
    # Between two attempts on the same server. After a NATS restart or a resumed pause, a client
    # waits up to this long before it is back (and before its mirror's reconnect poll): sie-chaos
    # counts it against the heal. Attempts on a dead port cost nothing.
    reconnect_time_wait: float = 0.25
    flush_timeout: float = 1.0


@dataclass(eq=False)
class _Subscription:
    subject: str
    send: trio.MemorySendChannel[bytes]
    client: object | None = None  # the nats client it is attached to
    handle: object | None = None  # nats-py's Subscription, for unsubscribing


@dataclass(frozen=True)
class PublishReport:
    """What a batch publish could prove: the subjects confirmed by a server round trip."""

    confirmed: tuple[bool, ...]

    @property
    def all_confirmed(self) -> bool:
        return all(self.confirmed)

    @property
    def none_confirmed(self) -> bool:
        return not any(self.confirmed)


class NatsLink:
    """A supervised NATS connection exposed to trio code.

    `on_reconnect` callbacks run (in trio) after every successful connect or reconnect, so
    consumers can close any gap they missed while disconnected (CONTRACT §2 item 2).
    """

    def __init__(
        self,
        settings: NatsSettings,
        *,
        on_state_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self._client: nats.NATS | None = None
        self._bridge: AsyncioBridge | None = None
        self._connected = False
        self._on_state_change = on_state_change
        self._reconnects: list[trio.MemorySendChannel[int]] = []
        self._subscriptions: list[_Subscription] = []
        self.connect_count = 0
        self._running = trio.Event()

    # ---- facts other tasks may read -------------------------------------------------------
    @property
    def connected(self) -> bool:
        client = self._client
        return self._connected and client is not None and client.is_connected

    @property
    def max_payload(self) -> int | None:
        """The server's largest accepted message (its INFO ``max_payload``), None until connected.

        A publish over it fails on every subject, so the writer refuses such a write up front.
        """
        client = self._client
        if client is None or not self.connected:
            return None
        return client.max_payload or None

    def reconnect_events(self, buffer: int = 16) -> trio.MemoryReceiveChannel[int]:
        """A channel that receives the connect count after each (re)connect.

        When the consumer is behind and the buffer is full, newer counts are dropped: a consumer
        only needs to know that some reconnect happened since it last looked."""
        send, receive = trio.open_memory_channel[int](buffer)
        self._reconnects.append(send)
        return receive

    # ---- lifecycle --------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_asyncio_bridge() as bridge:
            self._bridge = bridge
            self._running.set()
            task_status.started()
            try:
                await self._connect_forever()
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await self._close()
                self._running = trio.Event()  # a restarted run() brings a fresh bridge

    async def _connect_forever(self) -> None:
        backoff = Backoff(initial=0.1, maximum=2.0)
        while True:
            client = nats.NATS()
            attempt_deadline = self.settings.connect_timeout + 1.0
            with trio.move_on_after(attempt_deadline):
                try:
                    await self._bridge.run(
                        client.connect,
                        servers=[self.settings.url],
                        name=self.settings.name,
                        connect_timeout=math.ceil(self.settings.connect_timeout),
                        reconnect_time_wait=self.settings.reconnect_time_wait,
                        max_reconnect_attempts=-1,
                        ping_interval=self.settings.ping_interval,
                        max_outstanding_pings=self.settings.max_outstanding_pings,
                        disconnected_cb=self._aio_disconnected,
                        reconnected_cb=self._aio_reconnected,
                        error_cb=self._aio_error,
                        closed_cb=self._aio_closed,
                    )
                except Exception as exc:  # nats-py raises a zoo of types; all mean "not yet"
                    log.info("NATS connect to %s failed: %s", self.settings.url, exc)
            if client.is_connected:
                self._client = client
                for subscription in list(self._subscriptions):
                    await self._attach(subscription)
                await self._mark_connected()
                return
            await self._discard(client)
            await trio.sleep(backoff.next_delay())

    async def _discard(self, client: nats.NATS) -> None:
        with trio.move_on_after(1.0):
            try:
                await self._bridge.run(client.close)
            except Exception as exc:
                # Closing is best effort: a half-open client has nothing worth saving.
                log.debug("closing a NATS client failed: %s", exc)

    async def _close(self) -> None:
        client, self._client = self._client, None
        self._set_connected(False)
        if client is not None:
            await self._discard(client)

    # ---- publishing -------------------------------------------------------------------------
    async def publish_confirmed(self, messages: Sequence[tuple[str, bytes]]) -> PublishReport:
        """Publish a batch and prove delivery with one bounded flush.

        A message counts as confirmed only if the connection was up before it was published and
        is still up after a successful PING/PONG that follows it.
        """
        if not messages:
            return PublishReport(())
        client = self._client
        if client is None or not self.connected:
            return PublishReport(tuple(False for _ in messages))
        confirmed: tuple[bool, ...] = tuple(False for _ in messages)
        with trio.move_on_after(2 * self.settings.flush_timeout + 0.5):
            try:
                confirmed = await self._bridge.run(
                    _publish_and_flush, client, tuple(messages), self.settings)
            except Exception as exc:
                log.warning("NATS publish failed: %s", exc)
        return PublishReport(confirmed)

    # ---- anything else nats-py offers (JetStream, request/reply) -----------------------------
    async def run_with_client(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `async_fn(client, *args)` on the asyncio loop with the current connected client.

        The one door for the rest of nats-py, e.g. JetStream through the same connection:
        `await link.run_with_client(lambda c: c.jetstream().publish(subject, data))`. Raises
        NotConnected when there is no connected client; nats-py's own errors pass through."""
        client = self._client
        if client is None or not self.connected or self._bridge is None:
            raise NotConnected(f"not connected to {self.settings.url}")
        return await self._bridge.run(async_fn, client, *args)

    def start_from_thread(self, async_fn: Callable[..., Awaitable[Any]], *args: Any,
                          after: Callable[[], None] | None = None) -> bool:
        """`async_fn(client, *args)` started on the loop from a thread of our own (a model
        host's, or the loop's own for a batch computed there), not awaited; False when there
        is no connected client.

        Why: a result computed on a model's thread then reaches NATS in one thread hop instead
        of two (through trio and back). Only for sends whose loss the protocol tolerates (an
        unacked work item comes back after `ack_wait`); a failure is logged. `after()`: see
        `AsyncioBridge.start_from_thread`."""
        client, bridge = self._client, self._bridge
        if client is None or not self.connected or bridge is None:
            return False
        return bridge.start_from_thread(async_fn, client, *args, after=after)

    # ---- subscribing ------------------------------------------------------------------------
    async def subscribe(self, subject: str, buffer: int = 1024) -> trio.MemoryReceiveChannel[bytes]:
        """Messages of `subject`, delivered in order, with back-pressure (never dropped here).

        The subscription is attached to every fresh client (nats-py itself re-subscribes after a
        reconnect of the same client). Closing the returned channel ends the subscription: the
        next message finds it closed and unsubscribes, so a restarted consumer that subscribes
        again does not leave a stale twin behind.
        """
        await self._running.wait()
        send, receive = trio.open_memory_channel[bytes](buffer)
        subscription = _Subscription(subject, send)
        self._subscriptions.append(subscription)
        await self._attach(subscription)
        return receive

    async def _attach(self, subscription: "_Subscription") -> None:
        client = self._client
        if client is None or not client.is_connected or subscription.client is client:
            return
        subscription.client = client  # claimed before awaiting: a concurrent attach skips it
        bridge = self._bridge
        feed = bridge.feed(subscription.send)

        async def on_message(msg) -> None:  # runs on the asyncio loop, one message at a time
            try:
                await feed.send(msg.data)  # waits while the channel is full
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                try:
                    handle = await bridge.call_trio(self._forget, subscription)
                except BridgeClosed:
                    return
                if handle is not None:
                    await _unsubscribe(handle, subscription.subject)
            except BridgeClosed:
                pass  # the trio side is shutting down: nobody is left to read it

        subscription.handle = await bridge.run(_subscribe_and_flush, client,
                                               subscription.subject, on_message, self.settings)

    async def _forget(self, subscription: "_Subscription") -> object | None:
        """Trio side of a closed subscription: never attach it again; hand back its handle."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            return subscription.handle
        return None

    # ---- asyncio callbacks (run on the loop; our state is changed on the trio side) ---------
    async def _aio_disconnected(self) -> None:
        await self._tell_trio(self._async_set_connected, False)

    async def _aio_reconnected(self) -> None:
        await self._tell_trio(self._mark_connected)

    async def _aio_closed(self) -> None:
        await self._tell_trio(self._async_set_connected, False)

    async def _tell_trio(self, async_fn, *args) -> None:
        try:
            await self._bridge.call_trio(async_fn, *args)
        except BridgeClosed:
            pass  # the run is over: the state it would update is no longer read

    async def _aio_error(self, exc: Exception) -> None:
        log.info("NATS client error: %s", exc)

    async def _async_set_connected(self, value: bool) -> None:
        self._set_connected(value)

    async def _mark_connected(self) -> None:
        self._set_connected(True)
        self.connect_count += 1
        for send in self._reconnects:
            try:
                send.send_nowait(self.connect_count)
            except trio.WouldBlock:
                pass  # the consumer is behind; it will see a later count, which is all it needs

    def _set_connected(self, value: bool) -> None:
        if value != self._connected:
            log.info("NATS %s (%s)", "connected" if value else "disconnected", self.settings.url)
        self._connected = value
        if self._on_state_change is not None:
            self._on_state_change(value)


# ---- coroutines that run on the asyncio loop ---------------------------------------------------
async def _publish_and_flush(client: nats.NATS, messages: tuple[tuple[str, bytes], ...],
                             settings: NatsSettings) -> tuple[bool, ...]:
    sent: list[bool] = []
    for subject, payload in messages:
        if not client.is_connected:
            sent.append(False)
            continue
        try:
            await client.publish(subject, payload)
            sent.append(True)
        except Exception as exc:
            log.warning("NATS publish on %s failed: %s", subject, exc)
            sent.append(False)
    flushed = False
    if any(sent):
        try:
            await _flush_in_order(client, settings)
            flushed = client.is_connected
        except Exception as exc:
            log.warning("NATS flush failed: %s", exc)
    return tuple(ok and flushed for ok in sent)


async def _flush_in_order(client: nats.NATS, settings: NatsSettings) -> None:
    """A PING/PONG that comes back only after the server has seen everything sent before it.

    nats-py (2.16) writes flush()'s PING straight to the socket, while commands sent just before
    (PUB, SUB) may still wait in its pending buffer for the flusher task: the PONG can return
    before the server has them (seen in a server trace). The first flush kicks the flusher,
    which writes that buffer before the PONG is read; the second PING is then queued behind
    it, so its PONG proves the server processed what we sent.

    Each flush is waited for with our deadline but never cancelled (see sie_actors.aio.detached:
    a cancelled or timed-out nats-py flush kills the client's reader when its PONG comes late).
    nats-py's own timeout is only a backstop, far beyond the point where missed PINGs have made
    it reconnect, which empties its list of PONG futures."""
    backstop = max(60.0, 4 * settings.ping_interval * (settings.max_outstanding_pings + 1))
    for _ in range(2):
        await wait_detached(client.flush(timeout=backstop), settings.flush_timeout)


async def _subscribe_and_flush(client: nats.NATS, subject: str, cb, settings: NatsSettings):
    """Subscribe, then make sure the server has the interest before anyone relies on it.

    `subscribe()` only queues the SUB; a consumer that subscribes and then reads a snapshot to
    close its gap could otherwise miss a message published in between. If the flush fails the
    connection is going down: nats-py re-subscribes on reconnect, and reconnects resync anyway."""
    handle = await client.subscribe(subject, cb=cb)
    try:
        await _flush_in_order(client, settings)
    except Exception as exc:
        log.info("NATS flush after subscribing to %s failed: %s", subject, exc)
    return handle


async def _unsubscribe(handle, subject: str) -> None:
    try:
        await handle.unsubscribe()
    except Exception as exc:
        log.debug("unsubscribe from %s failed: %s", subject, exc)

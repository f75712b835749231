"""The encode work queue on JetStream, through the one `NatsLink` (one connection, one bridge).

Trio code sees three small things: `WorkQueue.publish` (work items in, each confirmed by a
JetStream publish ack, or `QueueUnavailable`), `WorkQueue.consumer` (a durable pull consumer of
a pool) and its `Delivery` objects with `ack` / `nak` / `in_progress` / `term`. nats-py objects
never leave the asyncio loop's hands except as opaque handles passed back to it.

Streams and consumers are the reference's: stream `WORK_POOL_{pool}` on `sie.work.*.{pool}`,
WorkQueue retention, memory storage, `max_age` 60 s; a durable `{bundle}_{pool}` pull consumer
with explicit acks shared by every worker of the pool. Why memory streams survive nothing: a
restarted nats-server loses them, so both sides re-create them (`ensure_stream`) after every
reconnect and whenever JetStream says the stream is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import nats.errors
import nats.js.errors
import trio
from nats.js.api import (AckPolicy, ConsumerConfig, RetentionPolicy, StorageType,
                         StreamConfig)

from sie_actors.aio.gather import gather, one_turn
from sie_actors.inference import wire
from sie_actors.nats.link import NatsLink, NotConnected

log = logging.getLogger("sie_actors.nats.jetstream")
T = TypeVar("T")

STREAM_MAX_AGE_S = 60.0
STREAM_MAX_MSGS = 100_000


class QueueUnavailable(Exception):
    """JetStream cannot take the work now (not connected, no stream, no publish ack)."""


@dataclass(eq=False)
class Delivery:
    """One fetched work message; `handle` is nats-py's Msg, only ever used on the loop."""

    data: bytes
    num_delivered: int
    handle: Any


class WorkQueue:
    def __init__(self, link: NatsLink, *, publish_timeout: float = 2.0) -> None:
        self.link = link
        self.publish_timeout = publish_timeout
        self._streams: set[str] = set()

    async def ensure_stream(self, pool: str) -> None:
        try:
            await self.link.run_with_client(_ensure_stream, pool)
        except (NotConnected, nats.errors.Error, TimeoutError) as exc:
            raise QueueUnavailable(f"JetStream stream {wire.stream_name(pool)}: {exc!r}") from None
        self._streams.add(pool)

    def forget_streams(self) -> None:
        """After a reconnect the server may be a fresh one without our memory streams."""
        self._streams.clear()

    async def publish(self, pool: str, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish every message with a JetStream ack, or raise `QueueUnavailable`.

        A missing stream (a restarted server) is re-created once and the publish retried."""
        if not self.link.connected:
            raise QueueUnavailable("not connected to NATS")
        for attempt in range(2):
            if pool not in self._streams:
                await self.ensure_stream(pool)
            with trio.move_on_after(self.publish_timeout + 0.5):
                try:
                    await self.link.run_with_client(_publish_all, tuple(messages),
                                                    self.publish_timeout)
                    return
                except nats.js.errors.NoStreamResponseError:
                    self._streams.discard(pool)
                    continue
                except (NotConnected, nats.errors.Error, TimeoutError) as exc:
                    raise QueueUnavailable(f"JetStream publish failed: {exc!r}") from None
            raise QueueUnavailable("JetStream publish timed out")
        raise QueueUnavailable(f"stream {wire.stream_name(pool)} is missing")

    async def consumer(self, pool: str, durable: str, *, ack_wait: float,
                       max_deliver: int) -> "PullConsumer":
        await self.ensure_stream(pool)
        try:
            handle = await self.link.run_with_client(_pull_subscribe, pool, durable, ack_wait,
                                                     max_deliver)
        except (NotConnected, nats.errors.Error, TimeoutError) as exc:
            raise QueueUnavailable(f"pull consumer {durable}: {exc!r}") from None
        return PullConsumer(self.link, handle)


class PullConsumer:
    def __init__(self, link: NatsLink, handle: Any) -> None:
        self.link = link
        self._handle = handle

    async def fetch_and_start(self, batch: int, timeout: float,
                              start: Callable[[list[Delivery]], T] | None
                              ) -> tuple[list[Delivery], T | None]:
        """Up to `batch` messages (none when none came within `timeout`), and what
        `start(deliveries)` returned, called on the loop's thread the moment they arrive (before
        trio hears of them): the worker's fast lane hands a batch to its model from there, one
        thread hop earlier. `start` must not block."""
        try:
            return await self.link.run_with_client(_fetch, self._handle, batch, timeout, start)
        except (NotConnected, nats.errors.Error, TimeoutError) as exc:
            raise QueueUnavailable(f"fetch failed: {exc!r}") from None

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        await self._each(deliveries, "ack")

    async def reply_and_ack(self, replies: Sequence[tuple[str, bytes]],
                            deliveries: Sequence[Delivery]) -> bool:
        """Publish the replies (core NATS), then ack, in one trip to the loop and in this order
        on the one connection: the server sees the ack only after the replies. No flush: if the
        connection drops, the ack is lost with the replies and the items come back after
        ack_wait. Returns False when something failed (the items then come back)."""
        try:
            await self.link.run_with_client(_reply_and_ack, tuple(replies),
                                            [d.handle for d in deliveries])
            return True
        except (NotConnected, nats.errors.Error, TimeoutError) as exc:
            log.info("replying to %d items failed: %r", len(deliveries), exc)
            return False

    def reply_and_ack_from_thread(self, replies: Sequence[tuple[str, bytes]],
                                  deliveries: Sequence[Delivery],
                                  after: Callable[[], None] | None = None) -> bool:
        """`reply_and_ack` started from a model host's thread, not awaited (see
        `NatsLink.start_from_thread`); False when it could not even be started. `after()` runs
        on the loop once the sends are handed to the connection's writer (also when they
        failed; after the connection's writer was woken): the host's way to wake trio only
        then."""
        return self.link.start_from_thread(_reply_and_ack, tuple(replies),
                                           [d.handle for d in deliveries], after=after)

    async def term(self, deliveries: Sequence[Delivery]) -> None:
        await self._each(deliveries, "term")

    async def in_progress(self, deliveries: Sequence[Delivery]) -> None:
        """Tell the server these are still being worked on: their ack_wait starts again."""
        await self._each(deliveries, "in_progress")

    async def nak(self, deliveries: Sequence[Delivery], delay: float) -> None:
        await self._each(deliveries, "nak", delay)

    async def _each(self, deliveries: Sequence[Delivery], method: str, *args: Any) -> None:
        if not deliveries:
            return
        try:
            await self.link.run_with_client(_call_each, [d.handle for d in deliveries], method,
                                            args)
        except (NotConnected, nats.errors.Error, TimeoutError) as exc:
            # Not fatal: an unacked message comes back after ack_wait, which is the point.
            log.info("%s of %d messages failed: %r", method, len(deliveries), exc)


# ---- coroutines that run on the asyncio loop ---------------------------------------------------
async def _ensure_stream(client, pool: str) -> None:
    js = client.jetstream()
    config = StreamConfig(name=wire.stream_name(pool), subjects=wire.stream_subjects(pool),
                          retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.MEMORY,
                          max_age=STREAM_MAX_AGE_S, max_msgs=STREAM_MAX_MSGS)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        # Already there with another config (another gateway or worker made it): first wins.
        await js.stream_info(wire.stream_name(pool))


async def _publish_all(client, messages: tuple[tuple[str, bytes], ...], timeout: float) -> None:
    js = client.jetstream(timeout=timeout)
    if len(messages) == 1:  # a one-item request: no task for `gather` to wait for
        subject, data = messages[0]
        await js.publish(subject, data, timeout=timeout)
        return
    await gather(*(js.publish(subject, data, timeout=timeout)
                           for subject, data in messages))


async def _pull_subscribe(client, pool: str, durable: str, ack_wait: float, max_deliver: int):
    js = client.jetstream()
    config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=ack_wait, max_deliver=max_deliver)
    return await js.pull_subscribe(wire.stream_subjects(pool)[0], durable=durable,
                                   stream=wire.stream_name(pool), config=config)


async def _fetch(_client, handle, batch: int, timeout: float,
                 start: Callable[[list[Delivery]], Any] | None) -> tuple[list[Delivery], Any]:
    try:
        msgs = await handle.fetch(batch, timeout=timeout)
    except (nats.errors.TimeoutError, TimeoutError):
        # "no message within timeout": nats-py raises its own TimeoutError for the server's
        # 408, and asyncio's (the builtin) when its own wait runs out first
        return [], None
    deliveries = [Delivery(m.data, m.metadata.num_delivered, m) for m in msgs]
    if start is None or not deliveries:
        return deliveries, None
    try:
        started = start(deliveries)
    except Exception:  # a fast-lane bug must not lose the batch: trio takes it the usual way
        log.exception("starting a fetched batch on the loop failed")
        return deliveries, None
    if started is not None:
        # One turn of the loop first, so what `start` set going here (a one-item batch
        # computed on this thread has its reply task waiting) reaches the connection's writer
        # before trio is woken with this answer and competes with it for the interpreter.
        await one_turn()
    return deliveries, started


async def _reply_and_ack(client, replies: tuple[tuple[str, bytes], ...], msgs: list) -> None:
    for subject, data in replies:
        await client.publish(subject, data)
    for msg in msgs:
        await msg.ack()


async def _call_each(_client, msgs: list, method: str, args: tuple) -> None:
    for msg in msgs:
        await getattr(msg, method)(*args)

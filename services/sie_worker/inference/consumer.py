"""The worker's pull consumer: work items from its pool's JetStream stream to results on inboxes.

One loop per worker: fetch a batch, group it by model, encode each group through the model's
host (batched by the profile's `max_batch_tokens`), publish each `WorkResult` to the item's
`_INBOX.{router_id}.{request_id}`, then ack. While a batch runs, every message of it gets a
progress ack each `progress_s`, so `ack_wait` can be short (5 s): a SIGKILLed worker stops
sending them and its items go to another worker of the pool within `ack_wait`, well inside the
gateway's 30 s. Results go out and the acks follow on the same connection, in that order, in
one trip to the asyncio loop (no flush: a dropped connection loses both, and the items come
back). A computed batch takes that trip straight from the model's host thread, the moment its
vectors exist, and a plain fetched batch reaches its host straight from the loop's thread
(`fast_lane.py`): each trip through trio is a wake-up of a sleeping thread, a few hundred
microseconds on an idle machine. Retryable outcomes (loading, host full) are NAKed with their
delay; terminal ones (weights nowhere, an unsupported item, an unknown model) become error
results.

After a reconnect the consumer is rebuilt: a restarted nats-server has lost the memory stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import trio

from sie_actors.domain.registry import Registry
from sie_actors.inference import wire
from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.profile import resolve_profile
from sie_actors.inference.wire import WorkItem
from sie_actors.nats.jetstream import Delivery, PullConsumer, QueueUnavailable, WorkQueue
from sie_actors.nats.link import NatsLink

from .encode_items import EncodeOutcome, encode_items, settle_batch
from .fast_lane import FastLane, FastStart, Replies
from .hosts import ModelHosts
from .model_host import LOADING

log = logging.getLogger("sie_worker.consumer")

UNKNOWN_MODEL_REDELIVERIES = 3   # a config delta may still be on its way


@dataclass(frozen=True)
class ConsumerSettings:
    pool: str
    bundle: str
    worker_id: str
    ack_wait_s: float = 5.0
    progress_s: float = 1.0
    fetch_batch: int = 64
    load_wait_s: float = 20.0
    max_deliver: int = 20
    fast_lane: bool = True


class WorkConsumer:
    def __init__(self, link: NatsLink, settings: ConsumerSettings, hosts: ModelHosts,
                 registry: Callable[[], Registry], metrics) -> None:
        self.link = link
        self.settings = settings
        self.hosts = hosts
        self.registry = registry
        self.metrics = metrics
        self.queue = WorkQueue(link)

    async def run(self) -> None:
        reconnects = self.link.reconnect_events()
        s = self.settings
        while True:
            try:
                consumer = await self.queue.consumer(
                    s.pool, wire.consumer_name(s.bundle, s.pool), ack_wait=s.ack_wait_s,
                    max_deliver=s.max_deliver)
            except QueueUnavailable as exc:
                log.info("no pull consumer yet: %s", exc)
                await trio.sleep(1.0)
                continue
            log.info("consuming %s as %s", wire.stream_name(s.pool),
                     wire.consumer_name(s.bundle, s.pool))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_next, reconnects, nursery.cancel_scope)
                try:
                    await self._pull(consumer)
                except QueueUnavailable as exc:
                    log.info("fetch failed, rebuilding the consumer: %s", exc)
                    await trio.sleep(0.5)
                nursery.cancel_scope.cancel()

    async def _pull(self, consumer: PullConsumer) -> None:
        s = self.settings
        lane = FastLane(consumer, self.hosts, self.registry, bundle=s.bundle,
                        worker_id=s.worker_id)
        start = lane.start if s.fast_lane else None
        while True:
            deliveries, fast = await consumer.fetch_and_start(s.fetch_batch, 1.0, start)
            if fast is not None:
                self.metrics.fast_lane_batches.inc()
            if deliveries:
                await self.handle(consumer, deliveries, fast)

    async def handle(self, consumer: PullConsumer, deliveries: list[Delivery],
                     fast: FastStart | None = None) -> None:
        """Serve one fetched batch; `fast`: the fast lane already started it on its host."""
        items = fast.pairs if fast is not None else await self._readable(consumer, deliveries)
        unsettled = {id(d): d for _, d in items}
        self.metrics.inflight_items.inc(len(items))
        try:
            if fast is not None and fast.started.computed:
                # computed already (one item, on the loop's thread): no progress acks to keep
                # sending, so no task for them, and less work for trio while the reply travels
                await self._serve_model(consumer, fast.model_id, items, unsettled, fast)
                return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._progress, consumer, unsettled)
                by_model: dict[str, list[tuple[WorkItem, Delivery]]] = {}
                for pair in items:
                    by_model.setdefault(pair[0].model_id, []).append(pair)
                for model_id, group in by_model.items():
                    await self._serve_model(consumer, model_id, group, unsettled, fast)
                nursery.cancel_scope.cancel()
        finally:
            self.metrics.inflight_items.dec(len(items))

    async def _readable(self, consumer: PullConsumer,
                        deliveries: list[Delivery]) -> list[tuple[WorkItem, Delivery]]:
        """The deliveries that are work items we may answer; the others are terminated."""
        items: list[tuple[WorkItem, Delivery]] = []
        for delivery in deliveries:
            try:
                item = wire.unpack_work_item(delivery.data)
            except wire.WireError as exc:
                log.warning("dropping a bad work item: %s", exc)
                await consumer.term([delivery])
                continue
            if not item.reply_allowed:
                log.warning("dropping work item %s: reply subject %r is not an inbox",
                            item.work_item_id, item.reply_subject)
                await consumer.term([delivery])
                continue
            items.append((item, delivery))
        return items

    async def _progress(self, consumer: PullConsumer, unsettled: dict[int, Delivery]) -> None:
        while True:
            await trio.sleep(self.settings.progress_s)
            await consumer.in_progress(list(unsettled.values()))

    async def _serve_model(self, consumer: PullConsumer, model_id: str,
                           group: list[tuple[WorkItem, Delivery]],
                           unsettled: dict[int, Delivery], fast: FastStart | None) -> None:
        worker_id = self.settings.worker_id
        if fast is not None:          # already on its host (the fast lane): wait for it
            replies, outcome = fast.replies, EncodeOutcome()
            await settle_batch(fast.started, worker_id, outcome)
        else:
            replies = Replies(consumer, group)
            outcome = await self._encode_group(model_id, group, replies)
        await replies.send(outcome.results)
        for r in outcome.results + outcome.sent:
            self.metrics.encode_items.labels("ok" if r.success else
                                             (r.error_code or "error")).inc()
            unsettled.pop(id(replies.delivery[r.work_item_id]), None)
        for item, delay in outcome.retry:
            delivery = replies.delivery[item.work_item_id]
            await consumer.nak([delivery], delay)
            unsettled.pop(id(delivery), None)
            self.metrics.encode_items.labels("retried").inc()

    async def _encode_group(self, model_id: str, group: list[tuple[WorkItem, Delivery]],
                            replies: Replies) -> EncodeOutcome:
        worker_id = self.settings.worker_id
        outcome = EncodeOutcome()
        entry = self.registry().get_model(model_id)
        if entry is None or self.settings.bundle not in entry.bundles:
            for item, delivery in group:
                if delivery.num_delivered < UNKNOWN_MODEL_REDELIVERIES:
                    outcome.retry.append((item, 1.0))
                else:
                    outcome.results.append(wire.error_result(
                        item, worker_id, f"model {model_id!r} is not in bundle "
                        f"{self.settings.bundle!r} on this worker", "MODEL_NOT_FOUND"))
            return outcome
        runnable = []
        for item, _ in group:
            if item.operation != "encode":
                outcome.results.append(wire.error_result(
                    item, worker_id, f"operation {item.operation!r} is not served yet "
                    "(only encode)", "INVALID_INPUT"))
            else:
                runnable.append(item)
        if not runnable:
            return outcome
        host = self.hosts.host(entry)
        if host.state == LOADING:
            with trio.move_on_after(self.settings.load_wait_s):
                await host.wait_settled()
        try:
            profile = resolve_profile(entry.config, runnable[0].profile_id or "default")
            encoded = await encode_items(host, runnable, worker_id=worker_id,
                                         max_batch_tokens=profile.max_batch_tokens,
                                         send_now=replies.send_now)
        except ModelLoadFailed as exc:
            outcome.results += [wire.error_result(i, worker_id, exc.message, exc.code)
                                for i in runnable]
            return outcome
        outcome.results += encoded.results
        outcome.sent += encoded.sent
        outcome.retry += encoded.retry
        return outcome


async def _cancel_on_next(events: trio.MemoryReceiveChannel[int], scope: trio.CancelScope) -> None:
    await events.receive()
    scope.cancel()

"""The worker's pull consumer: work items from its pool's JetStream stream to results on inboxes.

One loop per worker: fetch a batch, group it by model, encode each group through the model's
host (batched by the profile's `max_batch_tokens`), publish each `WorkResult` to the item's
`_INBOX.{router_id}.{request_id}`, then ack. While a batch runs, every message of it gets a
progress ack each `progress_s`, so `ack_wait` can be short (5 s): a SIGKILLed worker stops
sending them and its items go to another worker of the pool within `ack_wait`, well inside the
gateway's 30 s. Results go out and the acks follow on the same connection, in that order, in
one trip to the asyncio loop (no flush: a dropped connection loses both, and the items come
back). A computed batch takes that trip straight from the model's host thread, the moment its
vectors exist: one thread hop instead of two through trio, which on an idle machine costs a
wake-up of a few hundred microseconds each. Retryable outcomes (loading, host full) are NAKed with their delay; terminal ones
(weights nowhere, an unsupported item, an unknown model) become error results.

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
from sie_actors.inference.wire import WorkItem, WorkResult
from sie_actors.nats.jetstream import Delivery, PullConsumer, QueueUnavailable, WorkQueue
from sie_actors.nats.link import NatsLink

from .encode_items import encode_items
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
        while True:
            deliveries = await consumer.fetch(self.settings.fetch_batch, timeout=1.0)
            if deliveries:
                await self.handle(consumer, deliveries)

    async def handle(self, consumer: PullConsumer, deliveries: list[Delivery]) -> None:
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
        unsettled = {id(d): d for _, d in items}
        self.metrics.inflight_items.inc(len(items))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._progress, consumer, unsettled)
                by_model: dict[str, list[tuple[WorkItem, Delivery]]] = {}
                for pair in items:
                    by_model.setdefault(pair[0].model_id, []).append(pair)
                for model_id, group in by_model.items():
                    await self._serve_model(consumer, model_id, group, unsettled)
                nursery.cancel_scope.cancel()
        finally:
            self.metrics.inflight_items.dec(len(items))

    async def _progress(self, consumer: PullConsumer, unsettled: dict[int, Delivery]) -> None:
        while True:
            await trio.sleep(self.settings.progress_s)
            await consumer.in_progress(list(unsettled.values()))

    async def _serve_model(self, consumer: PullConsumer, model_id: str,
                           group: list[tuple[WorkItem, Delivery]],
                           unsettled: dict[int, Delivery]) -> None:
        worker_id = self.settings.worker_id
        by_id = {item.work_item_id: delivery for item, delivery in group}
        reply_to = {item.work_item_id: item.reply_subject for item, _ in group}
        results: list[WorkResult] = []
        sent: list[WorkResult] = []

        def send_now(batch: list[WorkResult]) -> bool:   # on the model's host thread
            return consumer.reply_and_ack_from_thread(
                [(reply_to[r.work_item_id], r.pack()) for r in batch],
                [by_id[r.work_item_id] for r in batch])

        retry: list[tuple[WorkItem, float]] = []
        entry = self.registry().get_model(model_id)
        if entry is None or self.settings.bundle not in entry.bundles:
            for item, delivery in group:
                if delivery.num_delivered < UNKNOWN_MODEL_REDELIVERIES:
                    retry.append((item, 1.0))
                else:
                    results.append(wire.error_result(
                        item, worker_id, f"model {model_id!r} is not in bundle "
                        f"{self.settings.bundle!r} on this worker", "MODEL_NOT_FOUND"))
        else:
            runnable = []
            for item, _ in group:
                if item.operation != "encode":
                    results.append(wire.error_result(
                        item, worker_id, f"operation {item.operation!r} is not served yet "
                        "(only encode)", "INVALID_INPUT"))
                else:
                    runnable.append(item)
            if runnable:
                host = self.hosts.host(entry)
                if host.state == LOADING:
                    with trio.move_on_after(self.settings.load_wait_s):
                        await host.wait_settled()
                try:
                    profile = resolve_profile(entry.config, runnable[0].profile_id or "default")
                    outcome = await encode_items(host, runnable, worker_id=worker_id,
                                                 max_batch_tokens=profile.max_batch_tokens,
                                                 send_now=send_now)
                    results += outcome.results
                    sent += outcome.sent
                    retry += outcome.retry
                except ModelLoadFailed as exc:
                    results += [wire.error_result(i, worker_id, exc.message, exc.code)
                                for i in runnable]
        if results:
            await consumer.reply_and_ack([(reply_to[r.work_item_id], r.pack()) for r in results],
                                         [by_id[r.work_item_id] for r in results])
        for r in results + sent:
            self.metrics.encode_items.labels("ok" if r.success else
                                             (r.error_code or "error")).inc()
            unsettled.pop(id(by_id[r.work_item_id]), None)
        for item, delay in retry:
            delivery = by_id[item.work_item_id]
            await consumer.nak([delivery], delay)
            unsettled.pop(id(delivery), None)
            self.metrics.encode_items.labels("retried").inc()


async def _cancel_on_next(events: trio.MemoryReceiveChannel[int], scope: trio.CancelScope) -> None:
    await events.receive()
    scope.cancel()

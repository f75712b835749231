"""The fast lane: a fetched batch goes from the NATS loop's thread straight to its model's host.

Why: a one-item request spends most of its few milliseconds of overhead in thread hand-offs,
each a wake-up of a sleeping thread. Through trio, a fetched message costs two (loop → trio →
host thread); the lane makes it one (loop → host thread), and the results already leave from
the host thread (`start_batch`'s `send_now`), so trio is off the request's path entirely. A
one-item batch whose host is idle makes it none: it is computed on the loop's thread itself,
and its reply leaves from there. Trio still owns everything else about the batch: it waits for
it (`settle_batch`), sends progress acks, counts it, and handles every error and retry.

The lane only takes the common case, judged without waiting: every message decodes, all for one
loaded model of this worker's bundle, one computation group that fits one batch. Anything else
(`None`) goes the usual way through trio, which judges it again from scratch; so nothing is
submitted until every check has passed, and a refusal by the host comes back as `None` too.
Everything read here is either immutable (the published registry view) or only read (a host's
state, which the host's own thread sets once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sie_actors.domain.registry import Registry
from sie_actors.inference import batching, wire
from sie_actors.inference.errors import InferenceError
from sie_actors.inference.profile import resolve_profile
from sie_actors.inference.wire import WorkItem, WorkResult
from sie_actors.nats.jetstream import Delivery, PullConsumer

from .encode_items import StartedBatch, refusal, start_batch
from .hosts import ModelHosts


class Replies:
    """Where each item's result goes and which message it settles, for one fetched batch."""

    def __init__(self, consumer: PullConsumer, pairs: Sequence[tuple[WorkItem, Delivery]]) -> None:
        self.consumer = consumer
        self.delivery = {item.work_item_id: delivery for item, delivery in pairs}
        self.reply_to = {item.work_item_id: item.reply_subject for item, _ in pairs}

    def _replies(self, results: Sequence[WorkResult]) -> list[tuple[str, bytes]]:
        return [(self.reply_to[r.work_item_id], r.pack()) for r in results]

    def send_now(self, results: list[WorkResult], wake: Callable[[], None]) -> bool:
        """On a model's host thread: reply and ack, then `wake` trio (see `start_batch`)."""
        return self.consumer.reply_and_ack_from_thread(
            self._replies(results), [self.delivery[r.work_item_id] for r in results], wake)

    async def send(self, results: Sequence[WorkResult]) -> None:
        """From trio: reply and ack (error results, and results the host could not send)."""
        if results:
            await self.consumer.reply_and_ack(
                self._replies(results), [self.delivery[r.work_item_id] for r in results])


@dataclass(frozen=True)
class FastStart:
    model_id: str
    pairs: list[tuple[WorkItem, Delivery]]
    replies: Replies
    started: StartedBatch


class FastLane:
    def __init__(self, consumer: PullConsumer, hosts: ModelHosts,
                 registry: Callable[[], Registry], *, bundle: str, worker_id: str) -> None:
        self.consumer = consumer
        self.hosts = hosts
        self.registry = registry
        self.bundle = bundle
        self.worker_id = worker_id
        self.taken = 0        # batches the lane started (a statistic for tests and debugging)

    def start(self, deliveries: list[Delivery]) -> FastStart | None:
        """On the NATS loop's thread: start the batch on its host, or `None` (trio's turn)."""
        pairs: list[tuple[WorkItem, Delivery]] = []
        for delivery in deliveries:
            try:
                item = wire.unpack_work_item(delivery.data)
            except wire.WireError:
                return None
            if (not item.reply_allowed or item.operation != "encode"
                    or refusal(item) is not None):
                return None
            pairs.append((item, delivery))
        items = [item for item, _ in pairs]
        model_id = items[0].model_id
        if any(item.model_id != model_id for item in items):
            return None
        entry = self.registry().get_model(model_id)
        host = self.hosts.serving(model_id)
        if entry is None or self.bundle not in entry.bundles or host is None:
            return None
        try:
            profile = resolve_profile(entry.config, items[0].profile_id or "default")
        except InferenceError:
            return None
        if len(batching.group(items)) != 1 or len(batching.plan_batches(
                items, [batching.item_cost(i) for i in items], profile.max_batch_tokens)) != 1:
            return None
        replies = Replies(self.consumer, pairs)
        # one item: computed right here when its host is idle (`ModelHost.submit` says why)
        started = start_batch(host, items, self.worker_id, send_now=replies.send_now,
                              here_if_idle=len(items) == 1)
        if started.error is not None:
            return None       # refused at once (full, unloaded): nothing was submitted
        self.taken += 1
        return FastStart(model_id, pairs, replies, started)

"""Turn one model's encode work items into work results (or "hand back later") via its host.

What the pull loop does with a message depends only on the outcome here: a ``WorkResult`` is
published and the message ACKed; an item in ``retry`` is NAKed with its delay, so the queue can
redeliver it (to this worker once the model is loaded, or to another one). Terminal failures
(weights nowhere, an item the model cannot take) become error results, never retries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from sie_actors.inference import batching, wire
from sie_actors.inference.adapters.base import EncodeOptions
from sie_actors.inference.adapters.pooling import POOLINGS
from sie_actors.inference.errors import InferenceError, ModelLoadFailed
from sie_actors.inference.wire import WorkItem, WorkResult

from .model_host import EncodeResult, ModelHost, Job

SUPPORTED_OUTPUTS = ("dense",)


# Called on the model's host thread with a batch's results the moment they exist, and `wake`,
# which tells trio the batch is done; True if it took charge of replying to and acking them
# (the consumer's direct path to NATS) and of calling `wake` once that is under way.
SendNow = Callable[[list[WorkResult], Callable[[], None]], bool]


@dataclass
class EncodeOutcome:
    results: list[WorkResult] = field(default_factory=list)     # for the caller to send
    sent: list[WorkResult] = field(default_factory=list)        # already sent by `send_now`
    retry: list[tuple[WorkItem, float]] = field(default_factory=list)   # (item, NAK delay s)


def encode_options(item: WorkItem) -> EncodeOptions:
    options = item.options or {}
    pooling = options.get("pooling")
    normalize = options.get("normalize")
    return EncodeOptions(is_query=bool(item.is_query), instruction=item.instruction,
                         pooling=pooling if isinstance(pooling, str) else None,
                         normalize=normalize if isinstance(normalize, bool) else None)


def refusal(item: WorkItem) -> str | None:
    """Why an item can never be encoded here, or ``None``."""
    unsupported = [t for t in (item.output_types or ["dense"]) if t not in SUPPORTED_OUTPUTS]
    if unsupported:
        return f"output types {unsupported} are not produced by this model (only dense)"
    if item.payload_ref is not None:
        return "payload_ref items are not supported yet (items must be inline, at most 1 MiB)"
    if not isinstance((item.item or {}).get("text"), str):
        return "the item has no text"
    pooling = (item.options or {}).get("pooling")
    if pooling is not None and pooling not in POOLINGS:
        return f"pooling {pooling!r} is not supported (supported: {', '.join(POOLINGS)})"
    return None


async def encode_items(host: ModelHost, items: Sequence[WorkItem], *, worker_id: str,
                       max_batch_tokens: int | None,
                       max_batch_requests: int = batching.DEFAULT_MAX_BATCH_REQUESTS,
                       clock: Callable[[], float] = time.time,
                       send_now: SendNow | None = None) -> EncodeOutcome:
    outcome = EncodeOutcome()
    runnable: list[WorkItem] = []
    for item in items:
        why = refusal(item)
        if why is None:
            runnable.append(item)
        else:
            outcome.results.append(wire.error_result(item, worker_id, why, "INVALID_INPUT"))
    for group in batching.group(runnable):
        costs = [batching.item_cost(i) for i in group]
        for batch in batching.plan_batches(group, costs, max_batch_tokens, max_batch_requests):
            await settle_batch(start_batch(host, batch, worker_id, clock=clock,
                                           send_now=send_now), worker_id, outcome)
    return outcome


@dataclass
class StartedBatch:
    """A batch handed to its host (``job``), or the error that refused it at once."""

    host: ModelHost
    batch: list[WorkItem]
    job: Job | None = None
    error: InferenceError | None = None

    @property
    def computed(self) -> bool:
        """The host has its vectors already (the thread that started it computed it)."""
        return self.job is not None and self.job.result is not None


def start_batch(host: ModelHost, batch: list[WorkItem], worker_id: str, *,
                clock: Callable[[], float] = time.time,
                send_now: SendNow | None = None, here_if_idle: bool = False) -> StartedBatch:
    """Hand a batch to its host without waiting; callable from trio or from the NATS loop's
    thread (the consumer's fast lane). `settle_batch` waits for it in trio."""
    started = clock()

    def finish(result: EncodeResult, wake: Callable[[], None]
               ) -> tuple[list[WorkResult], bool]:                     # on the host thread
        results = [wire.success_result(item, worker_id, wire.dense_payload(vector),
                                       queue_ms=max(0.0, (started - item.timestamp) * 1000.0),
                                       inference_ms=result.inference_ms)
                   for item, vector in zip(batch, result.vectors)]
        sent = send_now is not None and send_now(results, wake)
        if not sent:
            wake()
        return results, sent

    try:
        job = host.submit([i.item["text"] for i in batch], encode_options(batch[0]),
                          then=finish, then_wakes=True, here_if_idle=here_if_idle)
    except InferenceError as exc:      # ModelLoadFailed included
        return StartedBatch(host, batch, error=exc)
    return StartedBatch(host, batch, job)


async def settle_batch(started: StartedBatch, worker_id: str, outcome: EncodeOutcome) -> None:
    """Wait for a started batch and file its results, retries or errors in `outcome`."""
    batch = started.batch
    try:
        if started.error is not None:
            raise started.error
        result = await started.host.result(started.job)
    except ModelLoadFailed as exc:
        outcome.results += [wire.error_result(i, worker_id, exc.message, exc.code) for i in batch]
        return
    except InferenceError as exc:
        if exc.retry_after is not None:            # loading, queue full, unloaded: later
            outcome.retry += [(i, float(exc.retry_after)) for i in batch]
        else:
            outcome.results += [wire.error_result(i, worker_id, exc.message, exc.code)
                                for i in batch]
        return
    results, sent = result.followup
    (outcome.sent if sent else outcome.results).extend(results)

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

from .model_host import EncodeResult, ModelHost

SUPPORTED_OUTPUTS = ("dense",)


# Called on the model's host thread with a batch's results the moment they exist; True if it
# took charge of replying to and acking them (the consumer's direct path to NATS).
SendNow = Callable[[list[WorkResult]], bool]


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


def _refusal(item: WorkItem) -> str | None:
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
        why = _refusal(item)
        if why is None:
            runnable.append(item)
        else:
            outcome.results.append(wire.error_result(item, worker_id, why, "INVALID_INPUT"))
    for group in batching.group(runnable):
        costs = [batching.item_cost(i) for i in group]
        for batch in batching.plan_batches(group, costs, max_batch_tokens, max_batch_requests):
            await _run_batch(host, batch, worker_id, clock, outcome, send_now)
    return outcome


async def _run_batch(host: ModelHost, batch: list[WorkItem], worker_id: str,
                     clock: Callable[[], float], outcome: EncodeOutcome,
                     send_now: SendNow | None) -> None:
    started = clock()

    def finish(result: EncodeResult) -> tuple[list[WorkResult], bool]:   # on the host thread
        results = [wire.success_result(item, worker_id, wire.dense_payload(vector),
                                       queue_ms=max(0.0, (started - item.timestamp) * 1000.0),
                                       inference_ms=result.inference_ms)
                   for item, vector in zip(batch, result.vectors)]
        return results, send_now is not None and send_now(results)

    try:
        result = await host.encode([i.item["text"] for i in batch], encode_options(batch[0]),
                                   then=finish)
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

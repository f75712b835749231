"""Which work items may share one forward pass, and how many fit in it.

Items share a pass only when everything that changes the computation is equal (the original's
key: output types, instruction, is_query, options). A batch then fills, in arrival order, until
the profile's ``max_batch_tokens`` budget or ``max_batch_requests`` is reached. Cost is the
text's character count, as the original's default "charcount" preprocessor counts it: it is known
before tokenising, so planning costs nothing on the event loop.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Sequence, TypeVar

import msgpack

from .wire import WorkItem

DEFAULT_MAX_BATCH_REQUESTS = 64
T = TypeVar("T")


def group_key(item: WorkItem) -> Hashable:
    options = msgpack.packb(item.options or {}, use_bin_type=True, default=repr)
    return (tuple(item.output_types or ["dense"]), item.instruction, bool(item.is_query), options)


def item_cost(item: WorkItem) -> int:
    text = (item.item or {}).get("text")
    return max(1, len(text)) if isinstance(text, str) else 1


def group(items: Iterable[WorkItem]) -> list[list[WorkItem]]:
    """Items grouped by ``group_key``, groups in order of first appearance."""
    groups: dict[Hashable, list[WorkItem]] = {}
    for item in items:
        groups.setdefault(group_key(item), []).append(item)
    return list(groups.values())


def plan_batches(items: Sequence[T], costs: Sequence[int], max_batch_tokens: int | None,
                 max_batch_requests: int = DEFAULT_MAX_BATCH_REQUESTS) -> list[list[T]]:
    """Consecutive batches under both limits; an item over the budget alone is its own batch."""
    budget = max_batch_tokens if max_batch_tokens and max_batch_tokens > 0 else None
    batches: list[list[T]] = []
    current: list[T] = []
    spent = 0
    for item, cost in zip(items, costs):
        full = len(current) >= max_batch_requests or (budget is not None and spent + cost > budget)
        if current and full:
            batches.append(current)
            current, spent = [], 0
        current.append(item)
        spent += cost
    if current:
        batches.append(current)
    return batches


def merged_options(runtime: dict[str, Any] | None, request: dict[str, Any] | None) -> dict[str, Any]:
    """The profile's runtime options with the request's on top (the ``profile`` key dropped)."""
    merged = dict(runtime or {})
    merged.update({k: v for k, v in (request or {}).items() if k != "profile"})
    return merged

"""Grouping work items that may share a forward pass, and token-budgeted batch planning."""

from __future__ import annotations

from sie_actors.inference import batching
from sie_actors.inference.wire import WorkItem


def item(i, text="abc", **extra) -> WorkItem:
    return WorkItem(work_item_id=f"r.{i}", request_id="r", item_index=i, total_items=9,
                    operation="encode", model_id="m", profile_id="default", pool_name="p",
                    router_id="g", reply_subject="_INBOX.g.r", timestamp=0.0,
                    item={"text": text}, **extra)


def test_groups_by_everything_that_changes_the_computation():
    items = [item(0), item(1, is_query=True), item(2, output_types=["dense"]),
             item(3, options={"a": 1}), item(4, options={"a": 1}), item(5, instruction="x"),
             item(6, is_query=False)]
    groups = [[i.item_index for i in g] for g in batching.group(items)]
    # no output_types means ["dense"]; is_query None means False
    assert groups == [[0, 2, 6], [1], [3, 4], [5]]


def test_plan_respects_token_budget_and_request_cap():
    names = list("abcdef")
    assert batching.plan_batches(names, [4, 4, 4, 4, 4, 4], 8) == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert batching.plan_batches(names, [1] * 6, 100, max_batch_requests=4) == [list("abcd"), list("ef")]
    assert batching.plan_batches(names[:3], [1, 50, 1], 10) == [["a"], ["b"], ["c"]]
    assert batching.plan_batches([], [], 10) == []
    assert batching.plan_batches(names, [9] * 6, None, 64) == [names]


def test_cost_is_character_count():
    assert batching.item_cost(item(0, "hello")) == 5
    assert batching.item_cost(item(0, "")) == 1


def test_request_options_override_profile_runtime():
    assert batching.merged_options({"pooling": "mean", "normalize": True},
                                   {"normalize": False, "profile": "x"}) == \
        {"pooling": "mean", "normalize": False}

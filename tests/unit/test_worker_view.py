"""The published WorkerView: frame contents, the cached frame template, change notification."""

from __future__ import annotations

import orjson
import trio
import trio.testing

from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.domain.worker_status import WorkerStatus, status_frame
from sie_worker.catalog import load_catalog
from sie_worker.view import Identity, ViewCell, WorkerView
from tests.conftest import REPO

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"


def view(**kwargs) -> WorkerView:
    catalog = load_catalog(REPO / "bundles", REPO / "models", "default")
    identity = Identity(name="w-1", bundle="default", pool="l4", pid=4242)
    return WorkerView(identity=identity, registry=catalog.registry, **kwargs)


def test_frame_has_the_original_keys_and_our_values():
    v = view(ready=True)
    frame = orjson.loads(v.frame_text(now=1234.5))
    expected_keys = set(status_frame(name="", ready=False, bundle="", bundle_config_hash=""))
    assert set(frame) == expected_keys
    assert frame["timestamp"] == 1234.5
    assert frame["name"] == "w-1" and frame["pool_name"] == "l4" and frame["bundle"] == "default"
    assert frame["machine_profile"] == "" and frame["loaded_models"] == []
    assert frame["bundle_config_hash"] == v.registry.bundle_config_hash("default")
    assert frame["server"]["pid"] == 4242 and isinstance(frame["server"]["uptime_seconds"], int)
    assert [m["name"] for m in frame["models"]] == [m.model_id for m in v.models]
    first = frame["models"][0]
    assert first["state"] == "available" and first["device"] is None
    assert first["queue_depth"] == 0 and first["queue_pending_items"] == 0
    assert first["config"]["adapter"].startswith("sie_server.adapters.")
    status = WorkerStatus.parse(v.frame_text())
    assert status.ready and status.bundle_config_hash == frame["bundle_config_hash"]


def test_template_is_built_once_and_only_the_clock_changes():
    v = view(ready=True)
    a = orjson.loads(v.frame_text(now=1.0))
    b = orjson.loads(v.frame_text(now=2.25))
    assert v.template is v.template
    assert b["timestamp"] == 2.25
    a.pop("timestamp"), b.pop("timestamp")
    a["server"].pop("uptime_seconds"), b["server"].pop("uptime_seconds")
    assert a == b


def test_a_model_that_contains_the_placeholder_digits_does_not_break_the_template():
    v = view()
    registry, _ = v.registry.append(parse_model_yaml(
        f"sie_id: odd/987654321987654321\nprofiles:\n  default:\n    adapter_path: {ST}\n"))
    frame = orjson.loads(v.evolve(registry=registry).frame_text(now=5.0))
    assert "odd/987654321987654321" in {m["name"] for m in frame["models"]}


async def test_cell_wakes_waiters_on_publish():
    first = view()
    cell = ViewCell(first)
    woke: list[WorkerView] = []

    async def waiter():
        woke.append(await cell.wait_changed(first))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []
        second = first.evolve(ready=True)
        cell.publish(second)
    assert woke == [second, second]
    assert await cell.wait_changed(first) is second  # already changed: no wait

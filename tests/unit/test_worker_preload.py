"""Preload: a host only for models this worker can serve, each config judged once; loads take
turns (a failed load leaving no thread: test_worker_model_host.py)."""

from __future__ import annotations

import threading

import trio
import trio.testing

from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.loading import check_servable
from sie_actors.procs.polling import wait_for
from sie_worker.inference import service
from sie_worker.inference.model_host import LOADED, ModelHost
from sie_worker.view import ViewCell
from tests.unit.test_worker_model_host import FakeAdapter
from tests.unit.test_worker_view import view


def servable(config) -> bool:
    try:
        check_servable(config)
        return True
    except ModelLoadFailed:
        return False


class RecordingHosts:
    def __init__(self) -> None:
        self.started: list[str] = []

    def has(self, model_id: str) -> bool:
        return model_id in self.started

    def host(self, entry):
        self.started.append(entry.model_id)


async def test_preload_starts_hosts_only_for_servable_models_and_judges_each_config_once(
        monkeypatch):
    judged: list[str] = []

    def counting(config, profile="default"):
        judged.append(config.get("sie_id"))
        return check_servable(config, profile)

    monkeypatch.setattr(service, "check_servable", counting)
    first = view()
    models = {e.model_id: e for e in first.models}
    expected = sorted(m for m, e in models.items() if servable(e.config))
    assert expected and len(expected) < len(models)   # the catalog has both kinds
    cell, hosts = ViewCell(first), RecordingHosts()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.preload, cell, hosts)
        await wait_for(lambda: len(judged) == len(models), 5, "every model judged")
        assert sorted(hosts.started) == expected
        # a loaded_models change, and a new view of the same registry: nothing judged again
        cell.publish(cell.current.evolve(loaded_models=("x/y",)))
        cell.publish(cell.current.evolve(ready=True))
        await trio.testing.wait_all_tasks_blocked()
        assert len(judged) == len(models) and sorted(hosts.started) == expected
        nursery.cancel_scope.cancel()


async def test_loads_take_turns_on_one_slot():
    slot = threading.Semaphore(1)
    inside, overlap, gate = [0], [], threading.Event()

    def loader():
        inside[0] += 1
        overlap.append(inside[0])
        assert gate.wait(10)
        inside[0] -= 1
        return FakeAdapter()

    hosts = [ModelHost(f"org/m{i}", loader, load_slot=slot) for i in range(3)]
    for host in hosts:
        host.start()
    await wait_for(lambda: len(overlap) == 1, 5, "one load started")
    gate.set()
    for host in hosts:
        assert await host.wait_settled() == LOADED
    assert overlap == [1, 1, 1]           # never two loads at once
    for host in hosts:
        await host.aclose()

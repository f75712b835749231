"""The WriterActor's idempotency rules, with a store that fails on demand."""

from __future__ import annotations

import orjson
import trio
import yaml

from sie_actors.actors.publisher import PublishDeltas, PublishResult
from sie_actors.runtime import Actor
from sie_actors.store import ConfigStore, StoreUnavailable
from sie_actors.seed import load_seed
from sie_config.idempotency import WriterMemory
from sie_config.state import ConfigState
from sie_config.writer import StateCell, WriteModel, WriterActor
from tests.conftest import REPO

BODY = yaml.safe_dump({"sie_id": "w/model", "profiles": {"default": {
    "adapter_path": "sie_server.adapters.sentence_transformer:X", "max_batch_tokens": 8}}}).encode()


class FlakyStore:
    """A memory store whose next `failures` commits fail; with `epoch_first`, each failing
    commit persists its epoch before failing, as a model write that fails after step 1 of
    `ConfigStore.commit_write` does."""

    def __init__(self, name: str) -> None:
        self.inner = ConfigStore.open(f"memory://{name}")
        self.failures = 0
        self.epoch_first = False

    def commit_write(self, model_id, yaml_text, epoch):
        if self.failures:
            self.failures -= 1
            if self.epoch_first:
                self.inner.write_epoch(epoch)
            raise StoreUnavailable("cannot write /secret/store/models/x.yaml.tmp: injected")
        self.inner.commit_write(model_id, yaml_text, epoch)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def make_writer(store) -> tuple[WriterActor, WriterMemory, StateCell]:
    registry = load_seed(REPO / "bundles", REPO / "models").registry()
    cell = StateCell(ConfigState(registry, {}, frozenset(), 0, "gen"))
    memory = WriterMemory()
    return WriterActor(cell, memory, store=store, router_id="sie-config"), memory, cell


async def test_waiters_get_the_real_failure_and_a_later_retry_runs_again(nursery, request):
    store = FlakyStore(request.node.name)
    store.failures = 1
    writer, memory, cell = make_writer(store)
    ticket = memory.completed  # both requests are sent before either is handled
    outcomes = []

    async def send():
        outcomes.append(await writer.ref.ask(WriteModel(BODY, "key-1", ticket=ticket)))

    async with trio.open_nursery() as senders:
        senders.start_soon(send)
        senders.start_soon(send)
        nursery.start_soon(writer.run)
    assert [o.status for o in outcomes] == [503, 503]
    assert all(orjson.loads(o.body)["detail"]["error"] == "store_unavailable" for o in outcomes)
    assert cell.current.registry.get_model("w/model") is None
    # a retry sent after the failure runs again (failures are not cached) and succeeds
    retry = await writer.ref.ask(WriteModel(BODY, "key-1", ticket=memory.completed))
    assert retry.status == 201
    # and its success is replayed byte for byte, also after a "restart" (new memory, same store)
    again = await writer.ref.ask(WriteModel(BODY, "key-1", ticket=memory.completed))
    assert (again.status, again.body) == (201, retry.body)
    fresh, _, _ = make_writer(store)
    nursery.start_soon(fresh.run)
    replayed = await fresh.ref.ask(WriteModel(BODY, "key-1"))
    assert (replayed.status, replayed.body) == (201, retry.body)


async def test_failed_commit_that_persisted_nothing_leaves_the_epoch_alone(nursery, request):
    store = FlakyStore(request.node.name)
    writer, memory, cell = make_writer(store)
    nursery.start_soon(writer.run)
    store.failures = 1
    failed = await writer.ref.ask(WriteModel(BODY))
    assert failed.status == 503
    # the 503 names no file of the store (the details go to the log)
    assert "/secret/store" not in failed.body.decode()
    assert orjson.loads(failed.body)["detail"]["error"] == "store_unavailable"
    assert (cell.current.epoch, store.read_epoch()) == (0, 0)
    assert (await writer.ref.ask(WriteModel(BODY))).status == 201
    assert (cell.current.epoch, store.read_epoch()) == (1, 1)  # no gap for the gateways


async def test_failed_commit_that_persisted_its_epoch_is_adopted_never_reused(nursery, request):
    """Issue 15 defect 6: the store's epoch moved while the API's did not (a gap)."""
    store = FlakyStore(request.node.name)
    store.epoch_first = True
    writer, memory, cell = make_writer(store)
    nursery.start_soon(writer.run)
    store.failures = 1
    assert (await writer.ref.ask(WriteModel(BODY))).status == 503
    # the API serves the stored epoch (same models), so the two never disagree
    assert (cell.current.epoch, store.read_epoch()) == (1, 1)
    assert cell.current.registry.get_model("w/model") is None
    assert (await writer.ref.ask(WriteModel(BODY))).status == 201
    assert (cell.current.epoch, store.read_epoch()) == (2, 2)  # epoch 1 never reused
    # the delta log has the adopted epoch too (no model change): a mirror at 0 or 1 catches up
    stats = cell.log.statistics()
    assert (stats.base, stats.last, stats.epochs) == (0, 2, 2)
    assert [orjson.loads(p)["epoch"] for p in cell.log.since(0, "gen")] == [2]
    assert cell.log.since(1, "gen") == cell.log.since(0, "gen")


class RecordingPublisher(Actor):
    """Stands in for the PublisherActor: records the deltas, confirms them all."""

    def __init__(self) -> None:
        super().__init__(name="publisher")
        self.sent: list[PublishDeltas] = []

    async def handle(self, message: PublishDeltas) -> PublishResult:
        self.sent.append(message)
        return PublishResult("success", (), ())


async def test_a_delta_over_the_nats_max_payload_is_refused_before_persisting(nursery, request):
    """Issue 15: such a delta was persisted, then failed on both subjects (201 + a warning)."""
    store = ConfigStore.open(f"memory://{request.node.name}")
    publisher = RecordingPublisher()
    nursery.start_soon(publisher.run)
    registry = load_seed(REPO / "bundles", REPO / "models").registry()
    cell = StateCell(ConfigState(registry, {}, frozenset(), 0, "gen"))
    writer = WriterActor(cell, WriterMemory(), store=store, router_id="sie-config",
                         publisher=publisher.ref, nats_connected=lambda: True,
                         max_payload=lambda: 4096)
    nursery.start_soon(writer.run)
    big = yaml.safe_dump({"sie_id": "w/big", "notes": "n" * 5000, "profiles": {"default": {
        "adapter_path": "sie_server.adapters.sentence_transformer:X"}}}).encode()
    for dry_run in (True, False):
        refused = await writer.ref.ask(WriteModel(big, dry_run=dry_run))
        assert refused.status == 413, refused.body
        detail = orjson.loads(refused.body)["detail"]
        assert detail["error"] == "payload_too_large" and "4096" in detail["message"]
    assert (cell.current.epoch, store.read_epoch(), store.list_model_ids()) == (0, 0, [])
    assert publisher.sent == []
    assert (await writer.ref.ask(WriteModel(BODY))).status == 201
    assert len(publisher.sent) == 1
    assert max(len(d.to_json_bytes()) for d in publisher.sent[0].deltas) <= 4096
    # what the delta log keeps for catching up is what was published, byte for byte
    assert cell.log.since(0, "gen") == [d.to_json_bytes() for d in publisher.sent[0].deltas]

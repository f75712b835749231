"""The worker's mirror (the shared MirrorActor, bundle scope) against an in-memory sie-config:
ordering, buffering, resync causes, as the worker's metrics show them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import yaml

from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.seed import load_seed
from sie_config.state import ConfigState
from sie_worker.catalog import load_catalog
from sie_actors.actors.config_client import ConfigReadError
from sie_actors.actors.mirror import EpochPollerActor
from sie_actors.domain.mirror_protocol import (DeltaReceived, EpochObserved, MirrorSnapshot, Pacing,
                                               ResyncRequested)
from sie_actors.domain.snapshot import parse_bundle_snapshot, registry_from_bundle_snapshot
from sie_actors.domain.sync import EpochReport, MirrorPosition
from sie_actors.procs.polling import wait_for
from sie_worker.metrics import WorkerMetrics
from sie_worker.mirror import WorkerMirrorMetrics, WorkerViews, bundle_mirror
from sie_actors.runtime import Mailbox
from sie_worker.view import Identity, ViewCell, WorkerView
from tests.conftest import REPO

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"


def doc(model_id: str) -> str:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {
        "default": {"adapter_path": ST, "max_batch_tokens": 64}}})


@dataclass
class FakeConfig:
    """sie-config in memory: the writer's epoch and deltas, the bundle export, failures."""

    registry: object = field(default_factory=lambda: load_seed(REPO / "bundles",
                                                               REPO / "models").registry())
    epoch: int = 0
    generation: str = "g1"
    failing: bool = False
    gate: trio.Event | None = None
    fetches: int = 0

    def write(self, model_id: str) -> ConfigDelta:
        text = doc(model_id)
        self.registry, plan = self.registry.append(parse_model_yaml(text))
        self.epoch += 1
        return self.delta(model_id, text)

    def delta(self, model_id: str, text: str, **changes) -> ConfigDelta:
        fields = dict(router_id="sie-config", bundle_id="default", epoch=self.epoch,
                      bundle_config_hash=self.registry.bundle_config_hash("default"),
                      model_id=model_id, profiles_added=("default",), model_config=text,
                      affected_bundles=("default",), generation=self.generation)
        fields.update(changes)
        return ConfigDelta(**fields)

    @property
    def hash(self) -> str:
        return self.registry.bundle_config_hash("default")

    def info(self) -> EpochReport:
        return EpochReport(self.epoch, self.generation, "", {"default": self.hash})

    async def fetch(self, current=None) -> MirrorSnapshot:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise ConfigReadError("unreachable", "fake sie-config is down")
        state = ConfigState(registry=self.registry, raw_yaml={}, api_models=frozenset(),
                            epoch=self.epoch, generation=self.generation)
        snapshot = parse_bundle_snapshot(state.export_body("t", "default"), "default")
        return MirrorSnapshot(registry_from_bundle_snapshot(snapshot, LOCAL.bundles),
                              snapshot.epoch, snapshot.generation, snapshot.bundle_config_hash)


@dataclass
class EpochReader:
    """The config client's epoch read, answered from the fake sie-config (for the poller)."""

    source: FakeConfig

    async def epoch(self) -> EpochReport:
        return self.source.info()


LOCAL = load_catalog(REPO / "bundles", REPO / "models", "default")


def arrived(delta: ConfigDelta) -> DeltaReceived:
    return DeltaReceived(delta.to_json_bytes())


class Harness:
    def __init__(self, source: FakeConfig | None) -> None:
        self.source = source
        self.metrics = WorkerMetrics()
        self.cell = ViewCell(WorkerView(identity=Identity(name="t", bundle="default"),
                                        registry=LOCAL.registry, ready=source is None))
        self.views = WorkerViews(self.cell, self.metrics, has_source=source is not None)
        poller_box = Mailbox(name="poller")
        self.actor = bundle_mirror(self.views, bundle="default", source=source,
                                   trusted=("sie-config",), metrics=self.metrics,
                                   pacing=Pacing(0.005, 0.02), poller=poller_box.ref)
        # asked polls only (a held delta's verify read): the timer never fires in a test
        self.poller = EpochPollerActor(
            self.actor.ref, EpochReader(source), position=self.views.position, interval=3600.0,
            metrics=WorkerMirrorMetrics(self.metrics),
            mailbox=poller_box) if source is not None else None

    @property
    def view(self) -> WorkerView:
        return self.cell.current

    @property
    def held(self) -> MirrorPosition:
        return self.views.position()

    async def tell(self, message) -> None:
        await self.actor.ref.tell(message)

    async def until(self, predicate) -> None:
        await wait_for(predicate, 5, "harness condition", interval=0.001)

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def harness_factory(nursery):
    async def make(source: FakeConfig | None) -> Harness:
        h = Harness(source)
        await nursery.start(h.actor.run)
        if h.poller is not None:
            await nursery.start(h.poller.run)
        return h
    return make


async def test_not_ready_until_bootstrapped_then_sie_config_state(harness_factory):
    source = FakeConfig()
    source.write("api/one")
    source.gate = trio.Event()
    h = await harness_factory(source)
    assert not h.view.ready and h.view.syncing
    source.gate.set()
    await h.until(lambda: h.view.ready)
    assert h.view.bundle_config_hash == source.hash
    assert (h.view.epoch, h.view.generation) == (1, "g1")
    assert "api/one" in {m.model_id for m in h.view.models}


async def test_in_order_deltas_apply_duplicates_drop(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    first = source.write("d/one")
    second = source.write("d/two")
    for d in (first, first, second, first):
        await h.tell(arrived(d))
    await h.until(lambda: h.view.epoch == 2)
    await h.until(lambda: h.count("sie_worker_deltas_total", result="stale") == 1)
    assert h.count("sie_worker_deltas_total", result="duplicate") == 1
    assert h.view.bundle_config_hash == source.hash
    assert h.count("sie_worker_deltas_total", result="applied") == 2
    assert source.fetches == 1  # the bootstrap only


async def test_gap_resyncs_and_buffered_deltas_replay(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    source.write("g/lost")                    # epoch 1 never reaches the worker
    second = source.write("g/two")            # epoch 2: a gap
    source.gate = trio.Event()                # hold the resync fetch
    await h.tell(arrived(second))
    await h.until(lambda: h.view.syncing)
    assert h.view.ready  # serving its last state while resyncing
    third = source.write("g/three")           # arrives while the fetch is in flight
    await h.tell(arrived(third))
    await h.until(lambda: h.count("sie_worker_deltas_total", result="buffered") == 1)
    source.gate.set()
    await h.until(lambda: not h.view.syncing and h.view.epoch == 3)
    assert h.view.bundle_config_hash == source.hash
    assert h.count("sie_worker_resyncs_total", cause="gap") == 1


async def test_gap_of_other_bundles_writes_applies_without_a_resync(harness_factory):
    """Found by sie-chaos: a worker hears only its bundle's subject, so other bundles' writes
    look like epoch gaps, and it fetched a full snapshot for most deltas. A delta whose hash
    we reproduce after applying it proves nothing of ours was missed."""
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    other = yaml.safe_dump({"sie_id": "other/sg", "profiles": {"default": {
        "adapter_path": "sie_server.adapters.sglang:SGLangAdapter", "max_batch_tokens": 64}}})
    source.registry, _plan = source.registry.append(parse_model_yaml(other))
    source.epoch += 1                          # epoch 1: sglang only, nothing on our subject
    mine = source.write("d/mine")              # epoch 2: ours, across the gap
    await h.tell(arrived(mine))
    await h.until(lambda: h.view.epoch == 2)
    assert h.view.bundle_config_hash == source.hash
    assert h.count("sie_worker_deltas_total", result="applied_over_gap") == 1
    assert h.count("sie_worker_resyncs_total", cause="gap") == 0
    assert source.fetches == 1  # the bootstrap only
    # a gap that hides one of *our* writes still resyncs (the hash cannot match)
    source.write("d/lost")
    after = source.write("d/after")
    await h.tell(arrived(after))
    await h.until(lambda: h.view.epoch == 4 and not h.view.syncing)
    assert h.count("sie_worker_resyncs_total", cause="gap") == 1
    assert h.view.bundle_config_hash == source.hash


async def test_snapshot_older_than_buffered_delta_then_applies_it(harness_factory):
    source = FakeConfig()
    source.gate = trio.Event()
    h = await harness_factory(source)
    # the snapshot will be taken at epoch 0; epoch 1 arrives meanwhile and must not be lost
    snapshot_registry = source.registry
    first = source.write("late/one")
    newer_registry, source.registry, source.epoch = source.registry, snapshot_registry, 0
    await h.tell(arrived(first))
    await h.until(lambda: h.count("sie_worker_deltas_total", result="buffered") == 1)
    source.gate.set()
    await h.until(lambda: h.view.ready and h.view.epoch == 1)
    assert h.view.bundle_config_hash == newer_registry.bundle_config_hash("default")
    assert h.count("sie_worker_deltas_total", result="applied") == 1


async def test_hash_mismatch_after_apply_resyncs(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    # the worker's copy has drifted: sie-config holds a model it never heard of
    source.registry, _plan = source.registry.append(parse_model_yaml(doc("m/unheard")))
    good = source.write("m/one")     # sie-config's delta, with sie-config's hash
    await h.tell(arrived(good))
    await h.until(lambda: h.count("sie_worker_resyncs_total", cause="hash_mismatch") == 1)
    await h.until(lambda: not h.view.syncing and h.view.bundle_config_hash == source.hash)
    assert h.count("sie_worker_deltas_total", result="held") == 1 and source.fetches == 2


async def test_a_wrong_hash_on_content_sie_config_confirms_costs_no_resync(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    good = source.write("m/one")
    await h.tell(arrived(ConfigDelta(**{**good.__dict__, "bundle_config_hash": "0" * 64})))
    await h.until(lambda: h.view.epoch == 1)
    assert h.view.bundle_config_hash == source.hash and source.fetches == 1
    assert h.count("sie_worker_epoch_polls_total", trigger="verify", result="ok") == 1
    assert h.count("sie_worker_resyncs_total", cause="hash_mismatch") == 0


async def test_generation_change_resyncs(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    source.generation, source.epoch = "g2", 0
    restarted = source.write("gen/new")       # epoch 1 of a new generation
    await h.tell(arrived(restarted))
    await h.until(lambda: h.view.generation == "g2")
    assert h.view.epoch == 1 and h.view.bundle_config_hash == source.hash
    assert h.count("sie_worker_resyncs_total", cause="generation") == 1


async def test_unappliable_delta_resyncs(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    good = source.write("bad/doc")
    await h.tell(arrived(ConfigDelta(**{**good.__dict__, "model_config": "- not a map"})))
    await h.until(lambda: h.count("sie_worker_resyncs_total", cause="apply_failed") == 1)
    await h.until(lambda: not h.view.syncing)
    assert h.view.epoch == 1 and h.view.bundle_config_hash == source.hash


async def test_epoch_observations(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    await h.tell(EpochObserved(source.info(), h.held))   # in step: nothing
    source.write("obs/missed")
    await h.tell(EpochObserved(EpochReport(0, "g1", "", {"default": "stale"}), h.held))  # same epoch, other hash
    await h.until(lambda: h.count("sie_worker_resyncs_total", cause="bundle_config_hash") == 1)
    await h.until(lambda: not h.view.syncing)
    assert h.view.epoch == 1
    # behind us, but sent before we applied epoch 1: a race, not drift
    await h.tell(EpochObserved(EpochReport(0, "g1", "", {"default": "old"}), MirrorPosition(0, "g1")))
    source.write("obs/next")
    await h.tell(EpochObserved(source.info(), h.held))
    await h.until(lambda: h.view.epoch == 2 and not h.view.syncing)
    assert h.count("sie_worker_resyncs_total", cause="epoch_ahead") == 1
    assert source.fetches == 3


async def test_fetch_failures_back_off_and_recover(harness_factory):
    source = FakeConfig(failing=True)
    h = await harness_factory(source)
    await h.until(lambda: h.count("sie_worker_bootstrap_failures_total", reason="unreachable") >= 3)
    assert not h.view.ready
    source.failing = False
    await h.until(lambda: h.view.ready)
    assert h.view.bundle_config_hash == source.hash


async def test_without_sie_config_deltas_apply_in_arrival_order(harness_factory):
    writer = FakeConfig()
    h = await harness_factory(None)
    assert h.view.ready
    writer.write("solo/lost")
    second = writer.write("solo/two")
    await h.tell(arrived(second))        # a gap nobody can close: applied as is
    await h.until(lambda: h.view.epoch == 2)
    assert "solo/two" in {m.model_id for m in h.view.models}
    assert h.count("sie_worker_deltas_total", result="gap") == 1
    assert h.count("sie_worker_resyncs_total", cause="gap") == 0


async def test_shutdown_reports_not_ready_and_stays_so(harness_factory):
    writer = FakeConfig()
    h = await harness_factory(None)
    h.views.close()
    assert h.view.closing and not h.view.ready
    await h.tell(arrived(writer.write("late/one")))  # a change after the stop began
    await h.until(lambda: h.view.epoch == 1)
    assert h.view.closing and not h.view.ready


async def test_resync_request_fetches_again(harness_factory):
    source = FakeConfig()
    h = await harness_factory(source)
    await h.until(lambda: h.view.ready)
    source.write("quiet/write")  # no delta, no poll: only the request brings it
    await h.tell(ResyncRequested("operator"))
    await h.until(lambda: h.view.epoch == 1 and not h.view.syncing)
    assert h.count("sie_worker_resyncs_total", cause="operator") == 1

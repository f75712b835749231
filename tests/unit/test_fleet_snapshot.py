"""The fleet snapshot as a pure function: worker states, per-bundle counts, what counts as a change,
the arrival order of models, and the link facts read from the gateway's metrics."""

from __future__ import annotations

import yaml

from sie_actors.domain.model_config import parse_stored_model_yaml
from sie_actors.domain.sync import EpochReport, MirrorPosition
from sie_actors.domain.worker_status import WorkerStatus
from sie_actors.seed import load_seed
from sie_gateway.fleet import (Arrivals, LinkFacts, fleet_snapshot, model_detail, signature,
                               worker_state)
from sie_gateway.fleet_feed import EpochTap, LinkWatch
from sie_gateway.metrics import GatewayMetrics
from sie_actors.domain.mirror_protocol import EpochObserved
from sie_gateway.mirror import MirrorState
from sie_gateway.workers import WorkerView
from tests.conftest import REPO

TIMEOUT = 2.0
ST = "sie_server.adapters.sentence_transformer:X"


def seed_state(epoch: int = 3) -> MirrorState:
    registry = load_seed(REPO / "bundles", REPO / "models").registry()
    return MirrorState(registry, MirrorPosition(epoch, "gen-a"), bootstrapped=True)


def view(name: str, *, at: float = 10.0, connected: bool = True, ready: bool = True,
         bundle: str = "default", hash_: str = "", loaded: tuple[str, ...] = ()) -> WorkerView:
    status = WorkerStatus(name=name, ready=ready, bundle=bundle, bundle_config_hash=hash_,
                          pool_name="pool-" + bundle, loaded_models=loaded)
    return WorkerView(f"http://127.0.0.1:1/{name}", status, at, connected)


def test_worker_states():
    assert worker_state(view("a", at=10.0), 11.0, TIMEOUT) == "ready"
    assert worker_state(view("a", at=10.0, ready=False), 11.0, TIMEOUT) == "not_ready"
    assert worker_state(view("a", at=10.0), 12.5, TIMEOUT) == "silent"  # no frame in time
    assert worker_state(view("a", at=10.0, connected=False), 10.5, TIMEOUT) == "silent"
    assert worker_state(WorkerView("http://x", None, 0.0, False), 1.0, TIMEOUT) == "connecting"


def test_snapshot_counts_per_bundle_and_marks_acked_workers():
    state = seed_state()
    expected = state.registry.bundle_config_hash("default")
    views = [view("w-ok", hash_=expected, loaded=("BAAI/bge-m3",)),
             view("w-lag", hash_="0" * 64), view("w-gone", hash_=expected, at=1.0),
             view("w-other", bundle="sglang", hash_=state.registry.bundle_config_hash("sglang"))]
    facts = LinkFacts(name="gw", config_url="http://cfg", nats_configured=True,
                      nats_connected=True, source_epoch=3, source_generation="gen-a")
    snap = fleet_snapshot(state, views, 11.0, TIMEOUT, facts)
    default = next(b for b in snap["bundles"] if b["bundle_id"] == "default")
    assert default == {"bundle_id": "default", "expected_bundle_config_hash": expected,
                       "total_eligible_workers": 2, "acked_count": 1, "pending_count": 1,
                       "acked": False, "loaded": {"BAAI/bge-m3": 1}}
    sglang = next(b for b in snap["bundles"] if b["bundle_id"] == "sglang")
    assert sglang["acked"] is True and sglang["acked_count"] == 1
    workers = {w["name"]: w for w in snap["workers"]}
    assert workers["w-ok"]["acked"] is True and workers["w-lag"]["acked"] is False
    assert workers["w-gone"]["state"] == "silent" and workers["w-gone"]["last_frame_age_s"] == 10.0
    assert snap["workers"][0]["name"] == "w-gone"  # trouble first
    assert workers["w-ok"]["pool"] == "pool-default"
    assert snap["gateway"] == {"name": "gw", "epoch": 3, "generation": "gen-a",
                               "bootstrapped": True, "models": len(state.registry),
                               "workers": 4, "healthy_workers": 3}
    assert snap["config"]["in_sync"] is True
    assert fleet_snapshot(state, views, 11.0, TIMEOUT,
                          LinkFacts(source_epoch=4))["config"]["in_sync"] is False
    assert fleet_snapshot(state, views, 11.0, TIMEOUT, LinkFacts())["config"]["in_sync"] is None
    assert {m["model_id"] for m in snap["models"]} == {
        e.model_id for e in state.registry.list_models()}


def test_a_heartbeat_is_not_a_change_but_everything_else_is():
    state = seed_state()
    facts = LinkFacts()
    base = signature(state, [view("a", at=10.0)], 10.5, TIMEOUT, facts)
    # the same frame again, later: same signature (the page ages it by itself)
    assert signature(state, [view("a", at=11.0)], 11.5, TIMEOUT, facts) == base
    changes = [
        signature(state, [view("a", at=10.0, hash_="x")], 10.5, TIMEOUT, facts),
        signature(state, [view("a", at=10.0, ready=False)], 10.5, TIMEOUT, facts),
        signature(state, [view("a", at=10.0)], 12.5, TIMEOUT, facts),  # went silent
        signature(state, [view("a", at=10.0, connected=False)], 10.5, TIMEOUT, facts),
        signature(state, [], 10.5, TIMEOUT, facts),
        signature(seed_state(4), [view("a", at=10.0)], 10.5, TIMEOUT, facts),
        signature(state, [view("a", at=10.0)], 10.5, TIMEOUT, LinkFacts(nats_connected=True)),
        signature(state, [view("a", at=10.0)], 10.5, TIMEOUT, LinkFacts(source_epoch=9)),
        signature(state, [view("a", at=10.0)], 10.5, TIMEOUT,
                  LinkFacts(resyncs=1, last_resync_cause="gap")),
    ]
    assert all(change != base for change in changes)


def test_arrivals_rank_models_in_the_order_they_came():
    state = seed_state()
    arrivals = Arrivals()
    arrivals.observe(state)
    assert set(arrivals.ranks.values()) == {0}
    for model_id in ("z/first", "a/second"):
        doc = yaml.safe_dump({"sie_id": model_id, "profiles": {"p": {"adapter_path": ST}}})
        registry, _ = state.registry.append(parse_stored_model_yaml(doc))
        state = MirrorState(registry, MirrorPosition(state.position.epoch + 1, "gen-a"), True)
        arrivals.observe(state)
    assert arrivals.ranks["z/first"] == 1 and arrivals.ranks["a/second"] == 2
    snap = fleet_snapshot(state, [], 1.0, TIMEOUT, LinkFacts(), arrivals.ranks)
    newest = sorted(snap["models"], key=lambda m: -m["rank"])
    assert [m["model_id"] for m in newest[:2]] == ["a/second", "z/first"]


def test_model_detail_has_profiles_yaml_and_acked_workers():
    state = seed_state()
    expected = state.registry.bundle_config_hash("default")
    detail = model_detail(state, "baai/BGE-M3", [view("w-ok", hash_=expected)], 10.5, TIMEOUT)
    assert detail["model_id"] == "BAAI/bge-m3"
    assert [p["name"] for p in detail["profiles"]] == \
        state.registry.get_model("BAAI/bge-m3").profile_names()
    assert "sie_id: BAAI/bge-m3" in detail["yaml"]
    assert detail["bundles"][0]["acked_workers"] == ["w-ok"]
    assert model_detail(state, "no/such", [], 1.0, TIMEOUT) is None


async def test_link_facts_follow_the_gateways_metrics():
    metrics = GatewayMetrics()
    links = LinkWatch(name="gw", config_url=None, nats_configured=True, metrics=metrics)
    facts = links.refresh()
    assert facts.nats_connected is False and facts.resyncs == 0 and facts.last_resync_cause == ""
    metrics.nats_connected.set(1)
    metrics.resyncs.labels("startup").inc()
    facts = links.refresh()
    assert facts.nats_connected is True
    assert facts.resyncs == 1 and facts.last_resync_cause == "startup"
    first_at = facts.last_resync_at
    assert links.refresh().last_resync_at == first_at  # nothing new: the same resync
    metrics.resyncs.labels("gap").inc()
    facts = links.refresh()
    assert facts.resyncs == 2 and facts.last_resync_cause == "gap"


async def test_epoch_tap_notes_the_pollers_reports_and_forwards_every_message():
    class Target:
        def __init__(self) -> None:
            self.received = []

        async def tell(self, message) -> None:
            self.received.append(message)

    target = Target()
    links = LinkWatch(name="gw", config_url="http://cfg", nats_configured=False)
    tap = EpochTap(target, links.on_report)
    observed = EpochObserved(EpochReport(7, "gen-b"))
    await tap.tell(observed)
    await tap.tell("something else")
    assert target.received == [observed, "something else"]
    assert links.facts.source_epoch == 7 and links.facts.source_generation == "gen-b"
    assert links.facts.source_at is not None

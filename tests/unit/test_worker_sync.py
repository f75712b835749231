"""The worker's side of the shared sync rules (bundle scope): delta verdicts, drift, replay of
buffered deltas, and the bundle snapshot it rebuilds its registry from."""

from __future__ import annotations

import orjson
import pytest
import yaml

from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.errors import ParseError
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.seed import load_seed
from sie_config.state import ConfigState
from sie_actors.domain.mirror_protocol import (Count, DeltaReceived, Fetch, Metric, MirrorProtocol,
                                               MirrorScope, MirrorSnapshot, ResyncRequested,
                                               SnapshotFetched)
from sie_actors.domain.snapshot import parse_bundle_snapshot
from sie_actors.domain.snapshot import registry_from_bundle_snapshot as registry_from_snapshot
from sie_actors.domain.sync import DeltaVerdict, Drift, EpochReport, judge_delta, judge_epoch
from sie_actors.domain.sync import MirrorPosition as Position
from tests.conftest import REPO

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
SGLANG = "sie_server.adapters.sglang:SGLangEmbeddingAdapter"


def delta(epoch: int, generation: str = "g1", bundle: str = "default",
          bundle_hash: str = "h") -> ConfigDelta:
    return ConfigDelta(router_id="sie-config", bundle_id=bundle, epoch=epoch,
                       bundle_config_hash=bundle_hash, model_id="m", profiles_added=("default",),
                       model_config="sie_id: m\n", affected_bundles=(bundle,),
                       generation=generation)


def classify_delta(position: Position, d: ConfigDelta, bundle: str) -> DeltaVerdict | None:
    """What the worker's mirror makes of a delta, as a verdict (None: not for this bundle)."""
    protocol = MirrorProtocol(MirrorScope(bundle, ("sie-config",)), SEED, position, True)
    actions = protocol.step(DeltaReceived(d.to_json_bytes()), 0.0)
    if any(isinstance(a, Count) and a.labels[:1] == ("wrong_bundle",) for a in actions):
        return None
    return judge_delta(position, d.epoch, d.generation)


def drift_cause(position: Position, own_hash: str, report: EpochReport, bundle: str):
    drift = judge_epoch(position, report, own_bundle_hashes={bundle: own_hash})
    return None if drift is Drift.NONE else drift.value


SEED = load_seed(REPO / "bundles", REPO / "models").registry()


@pytest.mark.parametrize("local, incoming, verdict", [
    (4, 5, DeltaVerdict.APPLY),
    (0, 1, DeltaVerdict.APPLY),
    (5, 5, DeltaVerdict.DUPLICATE),
    (5, 3, DeltaVerdict.STALE),       # late replay
    (5, 7, DeltaVerdict.GAP),         # epoch 6 was lost
    (0, 2, DeltaVerdict.GAP),
])
def test_epoch_rules(local, incoming, verdict):
    assert classify_delta(Position(local, "g1"), delta(incoming), "default") is verdict


def test_generation_change_wins_over_epoch_order():
    # a restarted sequence: epoch 1 of a new generation is news, not a duplicate
    assert classify_delta(Position(9, "g1"), delta(1, "g2"), "default") is DeltaVerdict.GENERATION
    assert classify_delta(Position(9, "g1"), delta(10, "g2"), "default") is DeltaVerdict.GENERATION


def test_unknown_generation_on_either_side_is_not_checked():
    assert classify_delta(Position(0, ""), delta(1, "g2"), "default") is DeltaVerdict.APPLY
    assert classify_delta(Position(3, "g1"), delta(4, ""), "default") is DeltaVerdict.APPLY


def test_delta_for_another_bundle():
    assert classify_delta(Position(0, "g1"), delta(1, bundle="sglang"), "default") is None


def info(epoch: int, generation: str, own: str | None) -> EpochReport:
    return EpochReport(epoch, generation, "b", {"default": own} if own is not None else {})


@pytest.mark.parametrize("observed, cause", [
    (info(5, "g1", "h"), None),
    (info(6, "g1", "x"), "epoch_ahead"),
    (info(5, "g2", "h"), "generation"),
    (info(1, "g2", "h"), "generation"),
    (info(5, "g1", "x"), "bundle_config_hash"),
    (info(5, "g1", None), None),      # sie-config has no hash for our bundle
    (info(4, "g1", "x"), None),       # an answer older than deltas applied since
])
def test_drift(observed, cause):
    assert drift_cause(Position(5, "g1"), "h", observed, "default") == cause


def test_buffered_deltas_replay_in_epoch_order_once_each():
    protocol = MirrorProtocol(MirrorScope("default", ("sie-config",)), SEED, Position(4, "g1"),
                              True)
    [fetch] = [a for a in protocol.step(ResyncRequested("operator"), 0.0)
               if isinstance(a, Fetch)]
    same = SEED.bundle_config_hash("default")  # an epoch bump leaves the bundle as it was
    for epoch in (7, 5, 6, 7, 6):  # heard while the fetch is in flight (epoch bumps)
        bump = ConfigDelta("sie-config", "default", epoch, same, "", (), "", ("default",), "g1")
        protocol.step(DeltaReceived(bump.to_json_bytes()), 0.0)
    actions = protocol.step(SnapshotFetched(fetch.round, MirrorSnapshot(SEED, 4, "g1")), 0.0)
    applied = [a for a in actions if isinstance(a, Count) and a.metric is Metric.DELTA
               and a.labels[0] == "applied"]
    assert len(applied) == 3 and protocol.position == Position(7, "g1")
    assert not protocol.syncing  # in order, each once: no gap, no duplicate, no new fetch


# ---- snapshots: the worker reproduces sie-config's hash from sie-config's own export body


def config_state_with(*documents: str) -> ConfigState:
    seed = load_seed(REPO / "bundles", REPO / "models")
    registry = seed.registry()
    for text in documents:
        registry, _ = registry.append(parse_model_yaml(text))
    return ConfigState(registry=registry, raw_yaml={}, api_models=frozenset(), epoch=7,
                       generation="gen-x")


def test_snapshot_rebuild_reproduces_sie_config_hash_for_every_bundle():
    multi = yaml.safe_dump({"sie_id": "multi/bundle", "profiles": {
        "default": {"adapter_path": ST, "max_batch_tokens": 128},
        "big": {"adapter_path": SGLANG}}})
    appended = yaml.safe_dump({"sie_id": "BAAI/bge-m3", "profiles": {
        "extra": {"adapter_path": ST, "adapter_options": {"runtime": {"pooling": "cls"}}}}})
    state = config_state_with(multi, appended)
    seed = load_seed(REPO / "bundles", REPO / "models")
    for bundle in state.registry.list_bundles():
        body = state.export_body("2026-01-01T00:00:00Z", bundle.name)
        snapshot = parse_bundle_snapshot(body, bundle.name)
        assert (snapshot.epoch, snapshot.generation) == (7, "gen-x")
        assert (snapshot.bundle.name, snapshot.bundle.priority, snapshot.bundle.adapters) == (
            bundle.name, bundle.priority, bundle.adapters)
        registry = registry_from_snapshot(snapshot, seed.bundles)
        assert registry.bundle_config_hash(bundle.name) == snapshot.bundle_config_hash
        assert registry.bundle_config_hash(bundle.name) == state.registry.bundle_config_hash(
            bundle.name)
        # only this bundle's models
        assert {m.model_id for m in registry.list_models()} == {
            m.model_id for m in state.registry.models_in_bundle(bundle.name)}
    # even knowing no other bundle locally, the hash is the same
    body = state.export_body("t", "default")
    alone = registry_from_snapshot(parse_bundle_snapshot(body, "default"), ())
    assert alone.bundle_config_hash("default") == state.registry.bundle_config_hash("default")


def test_snapshot_replaces_the_seed_rather_than_merging():
    state = config_state_with()
    body = orjson.loads(state.export_body("t", "default"))
    body["models"] = body["models"][:1]
    snapshot = parse_bundle_snapshot(body, "default")
    registry = registry_from_snapshot(snapshot, load_seed(REPO / "bundles", None).bundles)
    assert len(registry.list_models()) == 1


def test_snapshot_of_another_bundle_is_refused():
    body = config_state_with().export_body("t", "sglang")
    with pytest.raises(ParseError):
        parse_bundle_snapshot(body, "default")
    with pytest.raises(ParseError):
        parse_bundle_snapshot(b'{"epoch": 1, "models": []}', "default")  # no bundle

"""A mirror caught up from sie-config's recent deltas equals sie-config, or the answer is refused
(then the source takes a full snapshot)."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from sie_actors.domain.catchup import CatchUpRefused, DeltasAnswer, catch_up, parse_answer
from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.mirror_protocol import CATCHUP, MirrorView
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.domain.sync import EpochReport, MirrorPosition
from tests.unit.test_mirror_protocol_properties import ST, Source, model_doc


def mirror_of(source: Source, bundle: str | None) -> MirrorView:
    snapshot = source.snapshot(bundle)
    return MirrorView(snapshot.registry, MirrorPosition(snapshot.epoch, snapshot.generation),
                      True, False)


def missed(source: Source, writes: list[bool], bundle: str | None) -> DeltasAnswer:
    """What sie-config answers after ``writes`` the mirror did not hear (True: another bundle)."""
    since = source.epoch
    deltas = []
    for other in writes:
        for payload in source.write(other):
            item = ConfigDelta.from_json(payload)
            if bundle is None or item.bundle_id == bundle:
                deltas.append(item)
    return DeltasAnswer(since, source.report(), tuple(deltas))


@pytest.mark.parametrize("bundle", [None, "default"])
def test_the_missed_deltas_bring_the_mirror_to_sie_configs_hashes(bundle):
    source = Source()
    source.write(False)
    view = mirror_of(source, bundle)
    answer = missed(source, [False, True, False, True], bundle)
    snapshot = catch_up(view, answer, bundle)
    assert (snapshot.epoch, snapshot.generation, snapshot.path) == (5, "g1", CATCHUP)
    want = source.snapshot(bundle)
    assert snapshot.expected_hash == want.expected_hash
    if bundle is None:
        assert snapshot.registry.bundle_config_hashes() == source.registry.bundle_config_hashes()
        assert [m.model_id for m in snapshot.registry.list_models()] == \
            [m.model_id for m in source.registry.list_models()]
    else:
        assert snapshot.registry.bundle_config_hash(bundle) == \
            source.registry.bundle_config_hash(bundle)
    assert len(view.registry) == len(mirror_of(Source(), bundle).registry) + 1  # untouched


def test_up_to_date_or_only_other_bundles_written_is_a_catch_up_of_nothing():
    source = Source()
    view = mirror_of(source, "default")
    answer = missed(source, [True, True], "default")  # a worker's bundle saw no write
    assert answer.deltas == ()
    snapshot = catch_up(view, answer, "default")
    assert snapshot.epoch == 2 and snapshot.registry is view.registry


def test_a_result_without_sie_configs_hash_is_refused():
    source = Source()
    view = mirror_of(source, None)
    answer = missed(source, [False, False], None)
    lost_one = dataclasses.replace(answer, deltas=answer.deltas[1:])  # an answer missing a write
    with pytest.raises(CatchUpRefused) as refused:
        catch_up(view, lost_one, None)
    assert refused.value.reason == "hash_mismatch"
    # a mirror that was not what it believed (a registry that differs at the same epoch)
    extra, _plan = view.registry.append(parse_model_yaml(model_doc("extra/model", ST)))
    wrong = dataclasses.replace(view, registry=extra)
    with pytest.raises(CatchUpRefused) as refused:
        catch_up(wrong, answer, None)
    assert refused.value.reason == "hash_mismatch"


@pytest.mark.parametrize("how", ["since", "generation", "epoch_order", "after_report",
                                 "other_bundle", "delta_generation"])
def test_an_answer_that_does_not_continue_the_mirror_is_refused(how):
    source = Source()
    view = mirror_of(source, "default")
    answer = missed(source, [False, False], "default")
    first, second = answer.deltas
    changed = {
        "since": dataclasses.replace(answer, since=1),
        "generation": dataclasses.replace(answer, report=dataclasses.replace(
            answer.report, generation="g2")),
        "epoch_order": dataclasses.replace(answer, deltas=(second, first)),
        "after_report": dataclasses.replace(answer, deltas=(first, dataclasses.replace(
            second, epoch=9))),
        "other_bundle": dataclasses.replace(answer, deltas=(first, dataclasses.replace(
            second, bundle_id="sglang"))),
        "delta_generation": dataclasses.replace(answer, deltas=(first, dataclasses.replace(
            second, generation="g0"))),
    }[how]
    with pytest.raises(CatchUpRefused):
        catch_up(view, changed, "default")


def test_a_delta_that_does_not_apply_is_refused():
    source = Source()
    view = mirror_of(source, None)
    answer = missed(source, [False], None)
    broken = dataclasses.replace(answer.deltas[0], model_config="sie_id: [unclosed")
    with pytest.raises(CatchUpRefused) as refused:
        catch_up(view, dataclasses.replace(answer, deltas=(broken,)), None)
    assert refused.value.reason == "apply_failed"


def test_a_report_without_hashes_cannot_verify_anything():
    source = Source()
    view = mirror_of(source, "default")
    answer = missed(source, [False], "default")
    bare = dataclasses.replace(answer, report=EpochReport(answer.report.epoch, "g1"))
    with pytest.raises(CatchUpRefused) as refused:
        catch_up(view, bare, "default")
    assert refused.value.reason == "unverifiable"


def test_a_mirror_without_a_position_does_not_catch_up():
    source = Source()
    view = dataclasses.replace(mirror_of(source, None), bootstrapped=False)
    with pytest.raises(CatchUpRefused):
        catch_up(view, missed(source, [False], None), None)


def test_the_answer_parses_from_sie_configs_body():
    source = Source()
    payload = source.write(False)[0]
    report = source.report()
    body = orjson.dumps({"epoch": report.epoch, "generation": report.generation,
                         "bundles_hash": report.bundles_hash,
                         "bundle_config_hashes": dict(report.bundle_config_hashes),
                         "since": 0, "deltas": [orjson.loads(payload)]})
    answer = parse_answer(body)
    assert answer.since == 0 and answer.report == report
    assert answer.deltas == (ConfigDelta.from_json(payload),)
    for bad in (b"[]", b"{", orjson.dumps({"epoch": 1, "since": -1, "deltas": []}),
                orjson.dumps({"epoch": 1, "since": 0, "deltas": {}}),
                orjson.dumps({"epoch": 1, "since": 0, "deltas": [{"epoch": "x"}]})):
        with pytest.raises(CatchUpRefused) as refused:
            parse_answer(bad)
        assert refused.value.reason == "malformed"

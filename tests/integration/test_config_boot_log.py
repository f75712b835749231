"""After a restart, sie-config's delta log still lets a mirror that was a few epochs behind catch
up, including over the write a kill left persisted but unpublished (`sie_config/boot_log.py`).

The property: a mirror holding sie-config's state at any epoch the seeded log covers, applying
what the restarted log answers, lands exactly on the restarted state (the catch-up's own hash
check passes). Writes go through the real WriterActor and store; the "kill" is the store's own
commit of one more write that is never published."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
import trio

from sie_actors.domain.catchup import CatchUpRefused, catch_up, parse_answer
from sie_actors.domain.errors import DeltasGone
from sie_actors.domain.mirror_protocol import MirrorView
from sie_actors.domain.sync import MirrorPosition
from sie_actors.store import ConfigStore
from sie_config import boot_log
from sie_config.delta_log import DeltaLog
from sie_config.idempotency import WriterMemory
from sie_config.main import initial_state, recent_writes
from sie_config.settings import ConfigSettings
from sie_config.writer import StateCell, WriteModel, WriterActor
from tests.conftest import base_env

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
SGLANG = "sie_server.adapters.sglang:SGLangAdapter"


def doc(model_id: str, profiles: dict[str, str]) -> bytes:
    lines = [f"sie_id: {model_id}", "profiles:"]
    for name, adapter in profiles.items():
        lines += [f"  {name}:", f"    adapter_path: {adapter}", "    max_batch_tokens: 512"]
    return ("\n".join(lines) + "\n").encode()


# new models, a profile appended to a model written before (its file is rewritten, so it is
# newer than models written after its first version), a model in two bundles, a refusal
WRITES = [doc("boot/a", {"p0": ST}), doc("boot/b", {"p0": ST, "s": SGLANG}),
          doc("boot/c", {"p0": ST}), doc("boot/a", {"p0": ST, "p1": ST}),
          doc("boot/d", {"s": SGLANG}), b"sie_id: [not, a, string]\n",
          doc("boot/e", {"p0": ST}), doc("boot/b", {"p0": ST, "s": SGLANG, "p2": ST})]
UNPUBLISHED = doc("boot/killed", {"p0": ST})


def settings_for(store_dir: Path, **extra: str) -> ConfigSettings:
    env = base_env(SIE_CONFIG_STORE_DIR=str(store_dir), SIE_CONFIG_RESTORE="true", **extra)
    return ConfigSettings.from_env(env, host="127.0.0.1", port=0)


async def write_all(store: ConfigStore, state, bodies) -> list:
    """Every state the writer served, one per epoch, in order."""
    cell = StateCell(state)
    served = [state]
    writer = WriterActor(cell, WriterMemory(), store=store, router_id="sie-config")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        for body in bodies:
            await writer.ref.ask(WriteModel(body))
            if cell.current.epoch != served[-1].epoch:
                served.append(cell.current)
        nursery.cancel_scope.cancel()
    return served


def restart(store_dir: Path, window: int = boot_log.RECOVERED_EPOCHS):
    settings = settings_for(store_dir)
    store = ConfigStore.open(str(store_dir))
    state = initial_state(settings, store)
    log = DeltaLog(state.epoch, state.generation, max_epochs=1000, max_bytes=10**7)
    boot_log.seed(log, state, recent_writes(settings, store, window), "sie-config", window)
    return state, log


def caught_up(mirror_state, restarted, log: DeltaLog, bundle: str | None):
    view = MirrorView(mirror_state.registry,
                      MirrorPosition(mirror_state.epoch, mirror_state.generation), True, False)
    answer = parse_answer(restarted.deltas_body(
        mirror_state.epoch, log.since(mirror_state.epoch, restarted.generation, bundle)))
    return catch_up(view, answer, bundle)


@pytest.fixture
def history(tmp_path):
    """States served before the kill, and the store after a write persisted but unpublished."""
    store_dir = tmp_path / "store"
    store = ConfigStore.open(str(store_dir))
    served = trio.run(write_all, store, initial_state(settings_for(store_dir), store),
                      WRITES)
    assert [s.epoch for s in served] == list(range(len(WRITES)))  # the refusal took no epoch
    store.commit_write("boot/killed", UNPUBLISHED.decode(), served[-1].epoch + 1)
    return store_dir, served


@pytest.mark.parametrize("bundle", [None, "default", "sglang"])
def test_a_mirror_at_any_covered_epoch_catches_up_over_the_unpublished_write(history, bundle):
    store_dir, served = history
    restarted, log = restart(store_dir)
    assert restarted.epoch == served[-1].epoch + 1
    assert log.statistics().base == 0  # fewer writes than the window: every epoch is covered
    for before in served:
        snapshot = caught_up(before, restarted, log, bundle)
        assert snapshot.epoch == restarted.epoch
        if bundle is None:
            assert snapshot.registry.bundles_hash == restarted.registry.bundles_hash
            assert snapshot.registry.bundle_config_hashes() == \
                restarted.registry.bundle_config_hashes()
            assert {m.model_id for m in snapshot.registry.list_models()} == \
                {m.model_id for m in restarted.registry.list_models()}
        else:
            assert snapshot.registry.bundle_config_hash(bundle) == \
                restarted.registry.bundle_config_hash(bundle)


def test_the_window_bounds_what_is_covered(history):
    store_dir, served = history
    restarted, log = restart(store_dir, window=3)
    assert log.statistics().base == restarted.epoch - 3
    for before in served[-3:]:  # epochs E-3 (the base), E-2 and E-1
        assert caught_up(before, restarted, log, None).epoch == restarted.epoch
    with pytest.raises(DeltasGone):
        log.since(restarted.epoch - 4, restarted.generation)


def test_a_guess_the_store_contradicts_is_refused_not_applied(history):
    """A model file changed behind sie-config's back at a time older than the newest files
    (a clock that stepped back): the seeded deltas miss it, so the catch-up's hash check
    refuses and the mirror takes a full snapshot; it never keeps a wrong registry."""
    store_dir, served = history
    path = store_dir / "models" / "boot__c.yaml"
    path.write_bytes(doc("boot/c", {"p0": ST, "late": ST}))
    old = (store_dir / "models" / "boot__a.yaml").stat().st_mtime_ns - 10**9
    os.utime(path, ns=(old, old))
    restarted, log = restart(store_dir, window=2)
    with pytest.raises(CatchUpRefused) as refused:
        caught_up(served[-1], restarted, log, None)
    assert refused.value.reason == "hash_mismatch"


def test_without_modification_times_the_log_starts_empty(history, monkeypatch):
    store_dir, served = history
    monkeypatch.setattr(ConfigStore, "recent_models", lambda self, count: None)
    restarted, log = restart(store_dir)
    assert log.statistics().epochs == 0
    with pytest.raises(DeltasGone):
        log.since(served[-1].epoch, restarted.generation)


def test_writes_a_coarse_clock_cannot_order_are_sent_together(history):
    """An object store keeps whole seconds: the last writes share one time. A mirror whose
    epoch falls among them gets all of them (at one label), so it still catches up."""
    store_dir, served = history
    models = store_dir / "models"
    newest = sorted(models.iterdir(), key=lambda p: p.stat().st_mtime_ns)[-4:]
    same = newest[-1].stat().st_mtime_ns
    for path in newest:
        os.utime(path, ns=(same, same))
    restarted, log = restart(store_dir)
    labels = [orjson.loads(p)["epoch"] for p in log.since(0, restarted.generation)]
    assert labels.count(restarted.epoch) >= 4  # the four tied files share the boot epoch
    for before in served:
        for bundle in (None, "default", "sglang"):
            assert caught_up(before, restarted, log, bundle).epoch == restarted.epoch


def test_a_store_with_fewer_epochs_than_files_seeds_nothing(history):
    """A hand-made or reset store (epoch 1, eight model files): no labels fit below it."""
    store_dir, _served = history
    ConfigStore.open(str(store_dir)).write_epoch(1)
    restarted, log = restart(store_dir)
    assert restarted.epoch == 1 and log.statistics().epochs == 0

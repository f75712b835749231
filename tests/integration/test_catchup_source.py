"""The catch-up source against a real sie-config (in-process, over HTTP): the deltas since the
mirror's epoch applied and checked, and the fall back to a full snapshot in the same fetch when
sie-config cannot answer (410), has no such endpoint (404: an older sie-config), or the result's
hash is not sie-config's."""

from __future__ import annotations

import logging

import pytest
import yaml

from sie_actors.actors.catchup_source import CatchUpSource
from sie_actors.actors.config_client import (BundleExportSource, ConfigClient, ConfigReadError,
                                             FullExportSource)
from sie_actors.domain.mirror_protocol import CATCHUP, FULL, MirrorSnapshot, MirrorView
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.domain.sync import MirrorPosition
from sie_actors.procs import free_port
from sie_worker.catalog import load_catalog
from tests.conftest import REPO
from tests.integration.inproc import start_config
from tests.integration.test_worker_mixed_fleet import OlderConfig

pytestmark = pytest.mark.integration

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
ADMIN = "catchup-admin"
LOCAL = load_catalog(REPO / "bundles", REPO / "models", "default")


def model(model_id: str) -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {"default": {
        "adapter_path": ST, "max_batch_tokens": 64}}}).encode()


class Counting:
    """The full source, counted."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    async def fetch(self, current=None) -> MirrorSnapshot:
        self.calls += 1
        return await self.inner.fetch(current)


def view_of(snapshot: MirrorSnapshot) -> MirrorView:
    return MirrorView(snapshot.registry, MirrorPosition(snapshot.epoch, snapshot.generation),
                      True, False)


async def write(config, *model_ids: str) -> None:
    async with config.client(ADMIN) as c:
        for model_id in model_ids:
            assert (await c.post("/v1/configs/models", content=model(model_id))).status_code == 201


def sources(client: ConfigClient, bundle: str | None) -> tuple[CatchUpSource, Counting]:
    full = Counting(FullExportSource(client) if bundle is None
                    else BundleExportSource(client, bundle, LOCAL.bundles))
    return CatchUpSource(client, full, bundle), full


def assert_is_sie_configs(snapshot: MirrorSnapshot, report, bundle: str | None) -> None:
    assert (snapshot.epoch, snapshot.generation) == (report.epoch, report.generation)
    if bundle is None:
        assert snapshot.registry.bundles_hash == report.bundles_hash
        assert snapshot.registry.bundle_config_hashes() == dict(report.bundle_config_hashes)
    else:
        assert (snapshot.registry.bundle_config_hash(bundle)
                == report.bundle_config_hashes[bundle])


@pytest.mark.parametrize("bundle", [None, "default"])
async def test_a_mirror_behind_catches_up_without_a_full_snapshot(nursery, bundle):
    config = await start_config(nursery, SIE_ADMIN_TOKEN=ADMIN)
    await write(config, "before/one")
    async with ConfigClient(config.url, ADMIN, 5.0) as client:
        source, full = sources(client, bundle)
        first = await source.fetch(None)  # nothing to catch up from: the full snapshot
        assert (first.path, full.calls) == (FULL, 1)
        await write(config, "missed/one", "missed/two", "missed/three")
        view = view_of(first)
        caught = await source.fetch(view)
        assert (caught.path, full.calls) == (CATCHUP, 1)
        report = await client.epoch()
        assert report.epoch == 4
        assert_is_sie_configs(caught, report, bundle)
        assert {"missed/one", "missed/three"} <= {m.model_id for m in
                                                  caught.registry.list_models()}
        assert view.registry.get_model("missed/one") is None  # the published view is untouched
        # up to date: a catch-up of nothing, still checked
        again = await source.fetch(view_of(caught))
        assert (again.path, again.epoch, full.calls) == (CATCHUP, 4, 1)


async def test_past_the_log_it_takes_a_full_snapshot_in_the_same_fetch(nursery, caplog):
    config = await start_config(nursery, SIE_ADMIN_TOKEN=ADMIN, SIE_CONFIG_DELTA_LOG_EPOCHS="1")
    async with ConfigClient(config.url, ADMIN, 5.0) as client:
        source, full = sources(client, None)
        view = view_of(await source.fetch(None))
        await write(config, "far/one", "far/two")
        with caplog.at_level(logging.INFO, "sie_actors.catchup"):
            snapshot = await source.fetch(view)
        assert (snapshot.path, full.calls) == (FULL, 2)
        assert_is_sie_configs(snapshot, await client.epoch(), None)
    assert "deltas_gone" in caplog.text and "taking a full snapshot" in caplog.text


async def test_an_older_sie_config_without_the_endpoint_gets_the_full_fetch(nursery, caplog):
    config = await start_config(nursery, SIE_ADMIN_TOKEN=ADMIN)
    older = OlderConfig(config.url)  # answers /v1/configs/deltas 404 {"detail": "Not Found"}
    try:
        async with ConfigClient(older.url, ADMIN, 5.0) as client:
            source, full = sources(client, None)
            view = view_of(await source.fetch(None))
            await write(config, "mixed/one")
            with caplog.at_level(logging.INFO, "sie_actors.catchup"):
                snapshot = await source.fetch(view)
            assert (snapshot.path, full.calls) == (FULL, 2)
            assert snapshot.registry.get_model("mixed/one") is not None
            assert older.hidden_deltas == 1
    finally:
        older.close()
    assert "an older sie-config" in caplog.text


@pytest.mark.parametrize("bundle", [None, "default"])
async def test_a_result_whose_hash_is_not_sie_configs_is_replaced_by_a_full_snapshot(nursery,
                                                                                   bundle):
    config = await start_config(nursery, SIE_ADMIN_TOKEN=ADMIN)
    async with ConfigClient(config.url, ADMIN, 5.0) as client:
        source, full = sources(client, bundle)
        view = view_of(await source.fetch(None))
        # the mirror holds a model sie-config never wrote, at sie-config's epoch
        wrong, _plan = view.registry.append(parse_model_yaml(model("never/written")))
        await write(config, "real/one")
        snapshot = await source.fetch(MirrorView(wrong, view.position, True, False))
        assert (snapshot.path, full.calls) == (FULL, 2)
        assert snapshot.registry.get_model("never/written") is None
        assert_is_sie_configs(snapshot, await client.epoch(), bundle)


async def test_sie_config_unreachable_is_a_failure_not_a_second_attempt():
    async with ConfigClient(f"http://127.0.0.1:{free_port()}", None, 2.0) as client:
        source, full = sources(client, None)
        snapshot_view = MirrorView(LOCAL.registry, MirrorPosition(3, "g"), True, False)
        with pytest.raises(ConfigReadError) as failed:
            await source.fetch(snapshot_view)
    assert failed.value.reason == "unreachable" and full.calls == 0

"""`GET /v1/configs/deltas`: what a gateway or worker that missed epochs reads to catch up, and the
410 that sends it to a full snapshot instead. sie-config runs in-process, on a real store and a
real nats-server (so the answer is compared with what NATS carried)."""

from __future__ import annotations

import httpx
import orjson
import pytest
import trio
import yaml

from sie_actors.domain.delta import ALL_SUBJECT
from sie_actors.http.metrics_text import sample_sum
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.procs.polling import wait_for
from tests.integration.inproc import start_config

pytestmark = pytest.mark.integration

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
SGLANG = "sie_server.adapters.sglang:SGLangAdapter"
READ, ADMIN = "deltas-read", "deltas-admin"
TOKENS = {"SIE_AUTH_TOKEN": READ, "SIE_ADMIN_TOKEN": ADMIN}


def model(model_id: str, adapter: str = ST) -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {"default": {
        "adapter_path": adapter, "max_batch_tokens": 64}}}).encode()


async def write(config, body: bytes) -> None:
    async with config.client(ADMIN) as c:
        async def accepted():
            r = await c.post("/v1/configs/models", content=body)
            return r if r.status_code != 503 else None  # NATS link still connecting
        r = await wait_for(accepted, 15, "a write accepted")
        assert r.status_code == 201, r.text


async def deltas(config, token: str | None = READ, **params) -> httpx.Response:
    async with config.client(token) as c:
        return await c.get("/v1/configs/deltas", params=params)


async def epoch(config) -> dict:
    async with config.client(READ) as c:
        return (await c.get("/v1/configs/epoch")).json()


async def test_the_deltas_since_an_epoch_are_what_nats_carried(nats_server, nursery, tmp_path):
    config = await start_config(nursery, SIE_NATS_URL=nats_server.url,
                                SIE_CONFIG_STORE_DIR=str(tmp_path / "store"), **TOKENS)
    link = NatsLink(NatsSettings(url=nats_server.url, name="deltas-test"))
    await nursery.start(link.run)
    await wait_for(lambda: link.connected, 10, "subscriber connected")
    heard = await link.subscribe(ALL_SUBJECT)
    await write(config, model("d/one"))
    await write(config, model("s/two", SGLANG))
    await write(config, model("d/three"))
    published = []
    with trio.fail_after(10):
        while len(published) < 3:
            published.append(orjson.loads(await heard.receive()))
    generation = (await epoch(config))["generation"]

    r = await deltas(config, since=0, generation=generation)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deltas"] == published  # the same objects, in epoch order
    assert body["since"] == 0
    assert {k: body[k] for k in ("epoch", "generation", "bundles_hash",
                                 "bundle_config_hashes")} == await epoch(config)

    since_one = (await deltas(config, since=1, generation=generation)).json()["deltas"]
    assert [d["epoch"] for d in since_one] == [2, 3]
    default = (await deltas(config, since=0, generation=generation, bundle="default")).json()
    assert [(d["epoch"], d["bundle_id"]) for d in default["deltas"]] == [(1, "default"),
                                                                        (3, "default")]
    assert (await deltas(config, since=3, generation=generation)).json()["deltas"] == []


async def test_what_the_log_cannot_answer_is_410_deltas_gone(nursery, tmp_path):
    store = str(tmp_path / "store")
    config = await start_config(nursery, SIE_CONFIG_STORE_DIR=store,
                                SIE_CONFIG_DELTA_LOG_EPOCHS="2", **TOKENS)
    for i in range(3):
        await write(config, model(f"gone/m{i}"))
    generation = (await epoch(config))["generation"]
    assert (await deltas(config, since=1, generation=generation)).status_code == 200

    async def gone(**params) -> str:
        r = await deltas(config, **params)
        assert r.status_code == 410, r.text
        detail = r.json()["detail"]
        assert detail["error"] == "deltas_gone"
        return detail["message"]

    assert "epoch 0 is older" in await gone(since=0, generation=generation)  # past the bound
    assert "generation" in await gone(since=1, generation="another-history")
    assert "behind epoch 9" in await gone(since=9, generation=generation)
    async with config.client() as c:
        metrics = (await c.get("/metrics")).text
    assert sample_sum(metrics, "sie_config_delta_reads_total", result="gone") == 3
    assert sample_sum(metrics, "sie_config_delta_log_epochs") == 2

    # a restart keeps the store's epoch and generation, not the log: older epochs are gone
    await config.stop()
    config = await start_config(nursery, SIE_CONFIG_STORE_DIR=store, **TOKENS)
    assert (await epoch(config))["generation"] == generation
    await gone(since=2, generation=generation)
    r = await deltas(config, since=3, generation=generation)  # the boot epoch: nothing missed
    assert r.status_code == 200 and r.json()["deltas"] == []
    await write(config, model("after/restart"))
    r = await deltas(config, since=3, generation=generation)
    assert [d["model_id"] for d in r.json()["deltas"]] == ["after/restart"]


@pytest.mark.parametrize("query", [
    "", "since=1", "generation=g", "since=&generation=g", "since=-1&generation=g",
    "since=1.5&generation=g", "since=abc&generation=g", "since=%201&generation=g",
    "since=99999999999999999999&generation=g", "since=1&since=2&generation=g",
    "since=1&generation=", "since=1&generation=g&generation=h", "since=1&generation=g&bundle=",
])
async def test_bad_query_values_are_400_with_a_detail(nursery, query):
    config = await start_config(nursery, **TOKENS)
    async with config.client(READ) as c:
        r = await c.get("/v1/configs/deltas?" + query)
    assert r.status_code == 400, (query, r.text)
    detail = r.json()["detail"]
    assert detail["error"] == "invalid_request" and "Query parameter" in detail["message"]


async def test_an_unknown_bundle_is_404_and_reads_need_the_read_token(nursery):
    config = await start_config(nursery, **TOKENS)
    generation = (await epoch(config))["generation"]
    r = await deltas(config, since=0, generation=generation, bundle="no-such")
    assert r.status_code == 404 and r.json()["detail"]["error"] == "bundle_not_found"
    assert (await deltas(config, None, since=0, generation=generation)).status_code == 401
    assert (await deltas(config, "wrong", since=0, generation=generation)).status_code == 403
    assert (await deltas(config, ADMIN, since=0, generation=generation)).status_code == 200

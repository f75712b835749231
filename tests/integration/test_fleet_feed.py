"""The fleet page's server side on a real gateway (in-process services, fake workers speaking the
real status protocol): the snapshot, the live NDJSON feed, auth, and the static page."""

from __future__ import annotations

import httpx
import orjson
import trio
import yaml

from sie_actors.http.metrics_text import sample_sum
from sie_actors.testing.fake_worker import start_fake_worker
from sie_actors.procs.polling import wait_for
from tests.integration.inproc import start_config, start_gateway


def model(model_id: str, profile: str = "default") -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {profile: {
        "adapter_path": "sie_server.adapters.sentence_transformer:X",
        "max_batch_tokens": 64}}}).encode()


class Feed:
    """Reads `/v1/fleet/stream` in the background and keeps every snapshot it received."""

    def __init__(self) -> None:
        self.snapshots: list[dict] = []
        self.keepalives = 0
        self.status: int | None = None

    async def run(self, url: str, headers: dict | None = None) -> None:
        async with httpx.AsyncClient(timeout=None) as client:
            async with client.stream("GET", url + "/v1/fleet/stream", headers=headers) as r:
                self.status = r.status_code
                assert r.headers["content-type"].startswith("application/x-ndjson")
                async for line in r.aiter_lines():
                    if line.strip():
                        self.snapshots.append(orjson.loads(line))
                    else:
                        self.keepalives += 1

    def last(self) -> dict | None:
        return self.snapshots[-1] if self.snapshots else None


def cell(snapshot: dict, bundle: str) -> dict:
    return next(b for b in snapshot["bundles"] if b["bundle_id"] == bundle)


async def test_feed_pushes_changes_without_polling(nursery):
    config = await start_config(nursery)
    async with config.client() as c:
        hashes = (await c.get("/v1/configs/epoch")).json()["bundle_config_hashes"]
    acked = await start_fake_worker(nursery, "w-acked", bundle_config_hash=hashes["default"])
    evil = "<img src=x onerror=alert(1)>"
    other = await start_fake_worker(nursery, evil, bundle_config_hash=hashes["default"])
    gateway = await start_gateway(nursery, workers=(acked.url, other.url),
                                  SIE_CONFIG_SERVICE_URL=config.url,
                                  SIE_GATEWAY_POLL_INTERVAL_S="0.3",
                                  SIE_GATEWAY_HEARTBEAT_TIMEOUT_S="1.5",
                                  SIE_GATEWAY_PEERS=config.url)
    feed = Feed()
    nursery.start_soon(feed.run, gateway.url)

    def both_ready():
        s = feed.last()
        return (s if s and s["gateway"]["healthy_workers"] == 2 and s["gateway"]["bootstrapped"]
                else None)
    first = await wait_for(both_ready, 10, "two healthy workers in the feed")
    assert feed.status == 200
    assert cell(first, "default")["acked"] is True
    assert cell(first, "default")["acked_count"] == 2
    assert cell(first, "default")["expected_bundle_config_hash"] == hashes["default"]
    assert {w["name"] for w in first["workers"]} == {"w-acked", evil}
    assert first["nats"] == {"configured": False, "connected": False}
    assert first["resync"]["last_cause"] == "startup" and first["resync"]["count"] >= 1
    assert any(m["model_id"] == "BAAI/bge-m3" for m in first["models"])
    await wait_for(lambda: feed.last()["config"]["epoch"] == 0, 10, "sie-config's epoch polled")
    assert feed.last()["config"]["in_sync"] is True
    # the peer list: sie-config answers /v1/configs/sync with 404, shown as an error, not hidden
    await wait_for(lambda: feed.last()["peers"] and feed.last()["peers"][0]["error"], 10,
                   "peer read")

    # a model added: the feed shows it as the newest, pending until the workers report the hash
    count = len(feed.snapshots)
    async with config.client() as c:
        assert (await c.post("/v1/configs/models", content=model("fleet/new"))).status_code == 201
        new_hash = (await c.get("/v1/configs/epoch")).json()["bundle_config_hashes"]["default"]

    def has_new():
        s = feed.last()
        return s if any(m["model_id"] == "fleet/new" for m in s["models"]) else None
    s = await wait_for(has_new, 10, "the new model in the feed")
    assert len(feed.snapshots) > count
    newest = max(s["models"], key=lambda m: m["rank"])
    assert newest["model_id"] == "fleet/new" and newest["bundles"] == ["default"]
    assert cell(s, "default")["acked"] is False and s["gateway"]["epoch"] == 1
    acked.update(bundle_config_hash=new_hash)
    other.update(bundle_config_hash=new_hash)
    await wait_for(lambda: cell(feed.last(), "default")["acked"], 10, "acked again")

    # heartbeats that change nothing are not changes: an idle feed only sends keepalives
    settled = len(feed.snapshots)
    with trio.move_on_after(1.5):
        await wait_for(lambda: len(feed.snapshots) > settled, 2, "no snapshot")
    assert len(feed.snapshots) == settled

    # the feed's own metrics: one stream open, snapshots counted, its CPU accounted
    async with httpx.AsyncClient(timeout=5) as c:
        text = (await c.get(gateway.url + "/metrics")).text
    assert sample_sum(text, "sie_gateway_fleet_streams") == 1
    assert sample_sum(text, "sie_gateway_fleet_snapshots_total") >= len(feed.snapshots)
    assert sample_sum(text, "sie_gateway_fleet_feed_cpu_seconds_total") > 0

    # a silent worker is marked silent after the heartbeat timeout
    acked.silent = True
    s = await wait_for(lambda: _worker(feed.last(), "w-acked")["state"] == "silent"
                       and feed.last(), 10, "silent")
    assert s["gateway"]["healthy_workers"] == 1



def _worker(snapshot: dict, name: str) -> dict:
    return next(w for w in snapshot["workers"] if w["name"] == name)


async def test_page_and_auth(nursery):
    gateway = await start_gateway(nursery, SIE_AUTH_TOKEN="read-secret",
                                  SIE_BUNDLES_DIR=_repo("bundles"), SIE_MODELS_DIR=_repo("models"))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=5) as c:
        for path in ("/", "/ui/"):
            page = await c.get(path)  # the page itself holds no data: no token needed
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert b"/ui/static/fleet.js" in page.content
        script = await c.get("/ui/static/fleet.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert b"innerHTML" not in script.content
        assert (await c.get("/ui/static/nope.js")).status_code == 404
        for path in ("/v1/fleet", "/v1/fleet/stream", "/v1/fleet/models/BAAI/bge-m3"):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.json()["detail"] == "Missing Authorization header"
            assert (await c.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 403
        auth = {"Authorization": "Bearer read-secret"}
        snap = (await c.get("/v1/fleet", headers=auth)).json()
        assert snap["config"]["url"] is None and snap["gateway"]["models"] >= 1
        detail = (await c.get("/v1/fleet/models/baai/BGE-M3", headers=auth)).json()
        assert detail["model_id"] == "BAAI/bge-m3"
        assert "sie_id: BAAI/bge-m3" in detail["yaml"] and detail["profiles"]
        assert [b["bundle_id"] for b in detail["bundles"]] == ["default"]
        missing = await c.get("/v1/fleet/models/no/such", headers=auth)
        assert missing.status_code == 404 and missing.json()["detail"]["error"] == "model_not_found"

        # a page that goes away stops costing anything: its feed ends with its connection
        async with c.stream("GET", "/v1/fleet/stream", headers=auth) as stream:
            lines = stream.aiter_lines()
            assert orjson.loads(await lines.__anext__())["type"] == "snapshot"
            assert await streams_open(c) == 1
        await wait_for(lambda: _zero(c), 10, "the closed page's feed ended")


async def streams_open(c: httpx.AsyncClient) -> float:
    text = (await c.get("/metrics")).text
    assert "sie_gateway_fleet_streams" in text
    return sample_sum(text, "sie_gateway_fleet_streams")


async def _zero(c: httpx.AsyncClient) -> bool:
    return await streams_open(c) == 0


def _repo(name: str) -> str:
    from tests.conftest import REPO
    return str(REPO / name)

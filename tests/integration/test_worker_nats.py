"""sie-worker with a real nats-server and a real sie-config: deltas to the status stream,
restart, lost deltas healed by the gap and reconnect paths (not the poll), untrusted producers,
announcements."""

from __future__ import annotations

import time

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from sie_actors.domain.delta import ConfigDelta, bundle_subject
from sie_actors.domain.model_config import parse_model_yaml
from sie_actors.domain.worker_status import (ANNOUNCE_SUBJECT, WorkerAnnouncement, WorkerStatus,
                                             status_ws_url)
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.procs import wait_until
from sie_worker.catalog import load_catalog
from tests.conftest import REPO, base_env
from sie_actors.procs.polling import wait_for
from tests.integration.worker_support import (NatsProxy, config_epoch, metric, model_yaml,
                                              post_until_accepted, spawn_worker,
                                              wait_nats_connected, wait_worker_hash, worker_env,
                                              worker_hash, worker_status)

pytestmark = pytest.mark.integration

# Long enough that the backstop poll cannot be what heals a worker within the test deadlines.
NO_POLL = "30"
HEAL_DEADLINE = 10.0


def start_config(spawn, nats_url: str, store, port: int | None = None) -> object:
    return spawn("sie_config", base_env(SIE_NATS_URL=nats_url, SIE_CONFIG_STORE_DIR=str(store),
                                        SIE_CONFIG_RESTORE="true"), port=port)


def start_worker(spawn, cfg_url: str, nats_url: str, name: str, port: int | None = None,
                 **extra: str):
    worker = spawn_worker(spawn, worker_env(config_url=cfg_url, nats_url=nats_url, **extra),
                          name, port=port, ready_path="/readyz")
    wait_nats_connected(worker.url)
    # the epoch check that follows the first connect is done, so it cannot race the test's writes
    wait_until(lambda: metric(worker.url, "sie_worker_epoch_polls_total", trigger="reconnect")
               >= 1, 10, what="the post-connect epoch check")
    return worker


async def connected_link(url: str, nursery: trio.Nursery, name: str) -> NatsLink:
    link = NatsLink(NatsSettings(url=url, name=name))
    await nursery.start(link.run)
    await wait_for(lambda: link.connected, 10, f"{name} connected")
    return link


async def test_post_reaches_worker_status_stream_over_nats(nats_server, spawn, tmp_path):
    cfg = start_config(spawn, nats_server.url, tmp_path / "store")
    # a long heartbeat: the frame with the new hash can only come from the change itself
    worker = start_worker(spawn, cfg.url, nats_server.url, "ws-worker", SIE_WORKER_POLL_S=NO_POLL,
                          SIE_WORKER_HEARTBEAT_S="5")
    body = model_yaml("nats/fast-model")
    frames: list[tuple[float, WorkerStatus]] = []
    got_frame = trio.Event()

    async def read_frames(ws) -> None:  # stamps each frame on arrival, beside the POST
        nonlocal got_frame
        while True:
            message = await ws.get_message()
            frames.append((time.perf_counter(), WorkerStatus.parse(message)))
            got_frame.set()
            got_frame = trio.Event()

    async with httpx.AsyncClient(timeout=30) as http, \
            open_websocket_url(status_ws_url(worker.url)) as ws, trio.open_nursery() as readers:
        readers.start_soon(read_frames, ws)
        with trio.fail_after(5):
            while not frames:
                await got_frame.wait()
        before = frames[0][1]
        assert before.ready
        async def accepted():  # sie-config's own NATS link may still be connecting
            posted_at = time.perf_counter()
            r = await http.post(cfg.url + "/v1/configs/models", content=body)
            return (r, posted_at, time.perf_counter()) if r.status_code != 503 else None

        r, posted_at, acked_at = await wait_for(accepted, 20, "a write accepted")
        assert r.status_code == 201 and r.json()["warnings"] == [], r.text
        expected = (await http.get(cfg.url + "/v1/configs/epoch")).json()[
            "bundle_config_hashes"]["default"]
        assert expected != before.bundle_config_hash

        def first_with_new_hash():
            return next((t for t, f in frames if f.bundle_config_hash == expected), None)

        with trio.fail_after(10):
            while first_with_new_hash() is None:
                await got_frame.wait()
        seen_at = first_with_new_hash()
        readers.cancel_scope.cancel()
    print(f"\nPOST->frame: {(seen_at - acked_at) * 1000:+.2f} ms relative to the 201 "
          f"({(seen_at - posted_at) * 1000:.2f} ms after the request was sent)")
    assert worker_hash(worker.url) == expected
    assert metric(worker.url, "sie_worker_deltas_total", result="applied") == 1
    assert metric(worker.url, "sie_worker_resyncs_total", cause="gap") == 0
    # pushed on the change itself (CONTRACT §2 item 12), not left to the next heartbeat
    assert metric(worker.url, "sie_worker_ws_frames_total", kind="change") >= 1


def test_restarted_worker_bootstraps_api_models(nats_server, spawn, tmp_path):
    cfg = start_config(spawn, nats_server.url, tmp_path / "store")
    worker = start_worker(spawn, cfg.url, nats_server.url, "restart-worker")
    assert post_until_accepted(cfg.url, model_yaml("restart/model")).status_code == 201
    expected = config_epoch(cfg.url)["bundle_config_hashes"]["default"]
    wait_worker_hash(worker.url, expected, HEAL_DEADLINE, "the delta applied")
    worker.kill()
    again = spawn_worker(spawn, worker_env(config_url=cfg.url, nats_url=nats_server.url),
                         "restart-worker", port=worker.port, ready_path="/readyz")
    frame = worker_status(again.url)
    assert frame["bundle_config_hash"] == expected
    assert "restart/model" in {m["name"] for m in frame["models"]}
    assert metric(again.url, "sie_worker_deltas_total", result="applied") == 0


def test_lost_delta_heals_through_the_gap(nats_server, spawn, tmp_path):
    proxy = NatsProxy(nats_server.port)
    try:
        cfg = start_config(spawn, nats_server.url, tmp_path / "store")
        worker = start_worker(spawn, cfg.url, proxy.url, "gap-worker", SIE_WORKER_POLL_S=NO_POLL)
        start_hash = worker_hash(worker.url)
        proxy.drop_subject = bundle_subject("default")
        assert post_until_accepted(cfg.url, model_yaml("gap/lost")).status_code == 201
        wait_until(lambda: proxy.dropped >= 1, 10, what="the delta swallowed by the proxy")
        proxy.drop_subject = None
        assert worker_hash(worker.url) == start_hash  # it really missed epoch 1
        assert post_until_accepted(cfg.url, model_yaml("gap/next")).status_code == 201
        expected = config_epoch(cfg.url)["bundle_config_hashes"]["default"]
        took = wait_worker_hash(worker.url, expected, HEAL_DEADLINE, "healed after a gap")
        print(f"\ngap healed {took * 1000:.0f} ms after the second write's 201")
        models = {m["name"] for m in worker_status(worker.url)["models"]}
        assert {"gap/lost", "gap/next"} <= models
        assert metric(worker.url, "sie_worker_resyncs_total", cause="gap") >= 1
        assert metric(worker.url, "sie_worker_epoch_polls_total", trigger="timer") == 0
        assert metric(worker.url, "sie_worker_epoch") == 2
    finally:
        proxy.close()


def test_lost_delta_heals_after_nats_reconnect(nats_server, spawn, tmp_path):
    proxy = NatsProxy(nats_server.port)
    try:
        cfg = start_config(spawn, nats_server.url, tmp_path / "store")
        worker = start_worker(spawn, cfg.url, proxy.url, "reconnect-worker",
                              SIE_WORKER_POLL_S=NO_POLL)
        start_hash = worker_hash(worker.url)
        proxy.cut()
        wait_until(lambda: metric(worker.url, "sie_worker_nats_connected") == 0, 10,
                   what="worker noticed the cut")
        assert post_until_accepted(cfg.url, model_yaml("reconnect/missed")).status_code == 201
        expected = config_epoch(cfg.url)["bundle_config_hashes"]["default"]
        assert worker_hash(worker.url) == start_hash != expected
        restored_at = time.monotonic()
        proxy.restore()
        wait_worker_hash(worker.url, expected, HEAL_DEADLINE, "healed after the reconnect")
        print(f"\nreconnect healed {(time.monotonic() - restored_at) * 1000:.0f} ms after "
              "the proxy was restored")
        assert metric(worker.url, "sie_worker_epoch_polls_total", trigger="reconnect",
                      result="ok") >= 1
        assert metric(worker.url, "sie_worker_epoch_polls_total", trigger="timer") == 0
        assert metric(worker.url, "sie_worker_resyncs_total", cause="epoch_ahead") >= 1
    finally:
        proxy.close()


async def test_untrusted_and_malformed_deltas_are_ignored(nats_server, spawn, nursery):
    worker = spawn_worker(spawn, worker_env(nats_url=nats_server.url, SIE_WORKER_ANNOUNCE_S="0.5"),
                          "trust-worker", ready_path="/readyz")
    wait_nats_connected(worker.url)
    link = await connected_link(nats_server.url, nursery, "forger")
    announcements = await link.subscribe(ANNOUNCE_SUBJECT)
    start_hash = worker_hash(worker.url)

    catalog = load_catalog(REPO / "bundles", REPO / "models", "default")

    def delta(router_id: str, model_id: str) -> bytes:
        text = model_yaml(model_id).decode()
        registry, _ = catalog.registry.append(parse_model_yaml(text))
        return ConfigDelta(router_id=router_id, bundle_id="default", epoch=1,
                           bundle_config_hash=registry.bundle_config_hash("default"),
                           model_id=model_id, profiles_added=("default",), model_config=text,
                           affected_bundles=("default",), generation="g1").to_json_bytes()

    subject = bundle_subject("default")
    report = await link.publish_confirmed([(subject, delta("evil", "evil/model")),
                                           (subject, delta("sie-configurator", "evil/twin")),
                                           (subject, b"{not json"),
                                           (subject, b'{"router_id": "sie-config"}')])
    assert report.all_confirmed
    # the same delta from a trusted producer id is applied: the pipeline works, so the
    # refusals above were decisions, not deafness
    trusted = delta("sie-config-0", "trusted/model")
    assert (await link.publish_confirmed([(subject, trusted)])).all_confirmed
    expected = ConfigDelta.from_json(trusted).bundle_config_hash
    assert expected != start_hash
    await trio.to_thread.run_sync(wait_worker_hash, worker.url, expected, 10, "trusted delta")
    names = {m["name"] for m in worker_status(worker.url)["models"]}
    assert "trusted/model" in names and not names & {"evil/model", "evil/twin"}
    assert metric(worker.url, "sie_worker_deltas_total", result="untrusted") == 2
    assert metric(worker.url, "sie_worker_deltas_total", result="invalid") == 2
    assert metric(worker.url, "sie_worker_deltas_total", result="applied") == 1

    with trio.fail_after(10):
        while True:
            announced = WorkerAnnouncement.from_json(await announcements.receive())
            if announced.name == "trust-worker":
                break
    assert announced.url == worker.url and announced.bundle == "default"
    assert announced.interval_s == 0.5

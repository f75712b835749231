"""sie-config on s3:// and gs:// stores, against servers that speak the real protocols on
loopback: moto (S3) and gcp-storage-emulator (GCS), started by the tests."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from sie_actors.procs import ManagedProcess, free_port, port_accepts, wait_until
from tests.conftest import base_env
from tests.integration.worker_support import post_model

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
BUCKET = "sie-config-test"


def model(model_id: str) -> bytes:
    return yaml.safe_dump({"sie_id": model_id, "profiles": {"default": {
        "adapter_path": "sie_server.adapters.sentence_transformer:X",
        "max_batch_tokens": 64}}}).encode()


class ObjectStore:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.port = free_port()
        endpoint = f"http://127.0.0.1:{self.port}"
        if kind == "s3":
            argv = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
            self.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
            self.url = f"s3://{BUCKET}/sie/config"
        else:
            argv = [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                    "--port", str(self.port), "--in-memory", "--default-bucket", BUCKET]
            self.env = {"STORAGE_EMULATOR_HOST": endpoint}
            self.url = f"gs://{BUCKET}/sie/config"
        self.process = ManagedProcess(f"{kind}-server", argv,
                                      log_path=tmp_path / f"{kind}-server.log")

    def start(self) -> "ObjectStore":
        self.process.start()
        wait_until(lambda: port_accepts(self.port), 20, what=f"{self.kind} server")
        if self.kind == "s3":
            httpx.put(self.env["AWS_ENDPOINT_URL"] + f"/{BUCKET}", timeout=10).raise_for_status()
        return self

    def config_env(self, **extra: str) -> dict[str, str]:
        return base_env(SIE_CONFIG_STORE_DIR=self.url, SIE_CONFIG_RESTORE="true",
                        SIE_CONFIG_STORE_TIMEOUT_S="5", **self.env, **extra)


@pytest.fixture(params=["s3", "gcs"])
def object_store(request, tmp_path):
    store = ObjectStore(request.param, tmp_path).start()
    try:
        yield store
    finally:
        store.process.kill()


def test_write_restart_restore(object_store, spawn):
    env = object_store.config_env()
    svc = spawn("sie_config", env)
    generation = httpx.get(svc.url + "/v1/configs/epoch").json()["generation"]
    first = post_model(svc.url, model("cloud/one"), **{"Idempotency-Key": "k1"})
    assert first.status_code == 201, first.text
    assert post_model(svc.url, model("cloud/two")).status_code == 201
    svc.kill()
    again = spawn("sie_config", env, port=svc.port)
    epoch = httpx.get(again.url + "/v1/configs/epoch").json()
    assert epoch["epoch"] == 2 and epoch["generation"] == generation
    listed = httpx.get(again.url + "/v1/configs/models").json()["models"]
    assert {"model_id": "cloud/one", "profiles": ["default"], "source": "api"} in listed
    got = httpx.get(again.url + "/v1/configs/models/cloud/two")
    assert got.status_code == 200 and yaml.safe_load(got.text)["sie_id"] == "cloud/two"
    replay = post_model(again.url, model("cloud/one"), **{"Idempotency-Key": "k1"})
    assert (replay.status_code, replay.content) == (201, first.content)
    # the listing's modification times seed the delta log: a mirror at epoch 1 can catch up
    deltas = httpx.get(again.url + "/v1/configs/deltas",
                       params={"since": 1, "generation": generation})
    assert deltas.status_code == 200, deltas.text
    assert "cloud/two" in {d["model_id"] for d in deltas.json()["deltas"]}


def test_crash_in_the_middle_of_writes(object_store, spawn):
    env = object_store.config_env()
    svc = spawn("sie_config", env)
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer():
        with httpx.Client(timeout=10) as client:
            for i in range(10_000):
                if stop.is_set():
                    return
                try:
                    r = client.post(svc.url + "/v1/configs/models", content=model(f"crash/m{i}"))
                except httpx.HTTPError:
                    return
                if r.status_code == 201:
                    acknowledged.append(f"crash/m{i}")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 5, 30, what="some acknowledged writes")
        svc.kill()  # SIGKILL while the writer keeps sending
    finally:
        stop.set()
        thread.join(timeout=30)
    again = spawn("sie_config", env, port=svc.port)
    epoch = httpx.get(again.url + "/v1/configs/epoch").json()["epoch"]
    models = {m["model_id"] for m in httpx.get(again.url + "/v1/configs/models").json()["models"]
              if m["model_id"].startswith("crash/")}
    assert set(acknowledged) <= models, "an acknowledged write was lost"
    assert epoch >= len(models) >= len(acknowledged)
    assert post_model(again.url, model("crash/after")).status_code == 201
    assert httpx.get(again.url + "/v1/configs/epoch").json()["epoch"] == epoch + 1


def test_store_down_then_up(object_store, spawn):
    svc = spawn("sie_config", object_store.config_env())
    assert post_model(svc.url, model("before/outage")).status_code == 201
    object_store.process.pause()  # unreachable: requests hang until our timeout
    try:
        r = post_model(svc.url, model("during/outage"))
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["error"] == "store_unavailable"
        assert httpx.get(svc.url + "/v1/configs/models/before/outage").status_code == 200
        assert httpx.get(svc.url + "/v1/configs/models/during/outage").status_code == 404
        assert httpx.get(svc.url + "/v1/configs/epoch").json()["epoch"] == 1
    finally:
        object_store.process.resume()
    r = post_model(svc.url, model("after/outage"))
    assert r.status_code == 201, r.text
    assert httpx.get(svc.url + "/v1/configs/models/during/outage").status_code == 404
    epoch = httpx.get(svc.url + "/v1/configs/epoch").json()["epoch"]
    assert epoch >= 2


def test_stop_with_store_and_nats_is_clean(object_store, spawn, nats_server):
    # The object store and NATS share the one asyncio loop thread; SIGTERM must unwind both
    # without asyncio's complaints (pending tasks destroyed, unclosed sessions, tracebacks).
    svc = spawn("sie_config", object_store.config_env(SIE_NATS_URL=nats_server.url))
    assert post_model(svc.url, model("quiet/one")).status_code == 201
    assert svc.stop(timeout=20) == 0
    log = svc.log_text()
    assert "sie-config serving on" in log
    for noise in ("Traceback", "Task was destroyed", "Unclosed", "Exception ignored",
                  "never retrieved", "InvalidStateError"):
        assert noise not in log, log

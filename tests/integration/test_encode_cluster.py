"""The data plane end to end on real processes: gateway → JetStream → worker → inbox → client.

One cluster per test module (nats-server with JetStream, sie-config, a gateway, two workers of the
default bundle consuming pool `default`) serves: the parity cases, bad bodies, a runtime-added
model, a model without weights, a worker SIGKILLed mid-request. NATS-down has its own cluster
since it kills the server.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pytest
import yaml

from sie_actors.inference import ndarray_msgpack
from sie_actors.inference.weights import resolve_weights
from sie_actors.procs import LOOPBACK, NatsServer, ServiceProcess, free_port, wait_until
from tests.conftest import REPO, base_env
from tests.integration.worker_support import metric, post_until_accepted

pytestmark = pytest.mark.integration

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"
FIXTURE = REPO / "tests" / "fixtures" / "embedding_vectors.json"


def minilm_doc(sie_id: str, hf_id: str = MINILM, adapter: str = ST) -> bytes:
    doc = {"sie_id": sie_id, "hf_id": hf_id, "profiles": {"default": {
        "adapter_path": adapter, "max_batch_tokens": 8192,
        "adapter_options": {"loadtime": {}, "runtime": {"pooling": "mean", "normalize": True}}}}}
    return yaml.safe_dump(doc).encode()


def ensure_weights() -> None:
    try:
        resolve_weights({"sie_id": MINILM, "hf_id": MINILM})
    except Exception:
        import subprocess
        import sys
        subprocess.run([sys.executable, "-m", "sie_tools.admin", "weights", "pull", MINILM],
                       check=True, timeout=300)


class Cluster:
    def __init__(self, tmp: Path, workers: int = 2, **worker_settings: str) -> None:
        self.tmp = tmp
        self.procs: list = []
        self.nats = NatsServer(log_path=tmp / "nats.log", store_dir=tmp / "js").start()
        self.procs.append(self.nats)
        self.config = self.spawn("sie_config", base_env(
            SIE_NATS_URL=self.nats.url, SIE_CONFIG_STORE_DIR=str(tmp / "store")), "/readyz")
        wenv = base_env(SIE_NATS_URL=self.nats.url, SIE_CONFIG_SERVICE_URL=self.config.url,
                        SIE_POOL="default", SIE_WORKER_PRELOAD="true",
                        SIE_WORKER_HEARTBEAT_S="0.5", **worker_settings)
        wenv.pop("POD_NAME")
        self.worker_env = wenv
        self.workers = [self.spawn("sie_worker", wenv, "/readyz",
                                   ["--bundle", "default", "--name", f"w{i}"])
                        for i in range(workers)]
        inference_port = free_port()
        genv = {k: v for k, v in base_env(
            SIE_NATS_URL=self.nats.url, SIE_CONFIG_SERVICE_URL=self.config.url,
            SIE_GATEWAY_WORKERS=",".join(w.url for w in self.workers),
            # generous: the SIGKILL test redoes a killed worker's batch on a shared 2-core machine
            SIE_GATEWAY_REQUEST_TIMEOUT_S="60",
            SIE_GATEWAY_INFERENCE_PORT=str(inference_port)).items()
            if k not in ("SIE_BUNDLES_DIR", "SIE_MODELS_DIR")}
        self.gateway = self.spawn("sie_gateway", genv, "/readyz")
        self.gateway_env = genv
        self.inference_url = f"http://{LOOPBACK}:{inference_port}"

    def spawn(self, module, env, ready, args=()):
        name = f"{module}-{len(self.procs)}"
        proc = ServiceProcess(name, module, list(args), env=env, log_path=self.tmp / f"{name}.log")
        self.procs.append(proc)
        return proc.start(timeout=60, ready_path=ready)

    def add(self, doc: bytes) -> None:
        r = post_until_accepted(self.config.url, doc)
        assert r.status_code in (200, 201), r.text

    def encode(self, model: str, body, *, msgpack_body: bool = False, timeout: float = 60,
               headers: dict | None = None, gateway=None) -> httpx.Response:
        hdrs = dict(headers or {})
        if msgpack_body:
            hdrs.setdefault("Content-Type", "application/msgpack")
            content = msgpack.packb(body, use_bin_type=True)
        elif isinstance(body, bytes):
            hdrs.setdefault("Content-Type", "application/json")
            content = body
        else:
            hdrs.setdefault("Content-Type", "application/json")
            content = json.dumps(body).encode()
        return httpx.post(f"{(gateway or self.gateway).url}/v1/encode/{model}", content=content,
                          headers=hdrs, timeout=timeout)

    def encode_ok(self, model: str, body, deadline: float = 60.0, **kw) -> httpx.Response:
        """Encode, retrying the two "come back later" answers (202 provisioning, 503 loading)."""
        def attempt():
            r = self.encode(model, body, **kw)
            return None if r.status_code in (202, 503) else r
        return wait_until(attempt, deadline, interval=0.2, what=f"an encode of {model}")

    def loaded_workers(self, model: str) -> list[str]:
        r = httpx.get(f"{self.gateway.url}/v1/configs/models/{model}/status", timeout=5)
        if r.status_code != 200:
            return []
        return [w for b in r.json()["bundles"] for w in b.get("loaded_workers", [])]

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ensure_weights()
    c = Cluster(tmp_path_factory.mktemp("encode-cluster"))
    try:
        c.add(minilm_doc("acme/minilm-support"))
        wait_until(lambda: len(c.loaded_workers("acme/minilm-support")) == 2, 90,
                   what="both workers loaded acme/minilm-support")
        yield c
    finally:
        c.close()


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_parity_through_the_cluster(cluster):
    cases = json.loads(FIXTURE.read_text())["cases"]
    body = {"items": [{"text": c["text"], "id": str(i)} for i, c in enumerate(cases)]}
    r = cluster.encode_ok("acme/minilm-support", body)
    assert r.status_code == 200, r.text
    assert r.headers["x-sie-request-id"] and r.headers["x-sie-worker"].startswith("queue:")
    items = r.json()["items"]
    assert len(items) == len(cases)
    worst = 1.0
    for i, (case, item) in enumerate(zip(cases, items)):
        assert item["id"] == str(i)
        assert item["dense"]["dims"] == 384 and item["dense"]["dtype"] == "float32"
        worst = min(worst, cosine(item["dense"]["values"], case["dense"]))
    print(f"lowest cosine over {len(cases)} cases through the cluster: {worst:.8f}")
    assert worst >= 0.99999


def test_one_item_requests_take_the_fast_lane(cluster):
    """By default a worker starts a plain fetched batch from its NATS loop's thread, and trio
    still settles it (counted, no longer in flight)."""
    def total(name: str, **labels: str) -> float:
        return sum(metric(w.url, name, **labels) for w in cluster.workers)

    before = total("sie_worker_fast_lane_batches_total")
    settled = total("sie_worker_encode_items_total", outcome="ok")
    for i in range(3):
        r = cluster.encode_ok("acme/minilm-support", {"items": [{"text": f"lane {i}"}]})
        assert r.status_code == 200, r.text
    assert total("sie_worker_fast_lane_batches_total") >= before + 3
    wait_until(lambda: total("sie_worker_encode_items_total", outcome="ok") >= settled + 3
               and total("sie_worker_inflight_items") == 0, 10, what="the batches settled")


def test_without_the_fast_lane_every_batch_goes_through_trio(tmp_path):
    """`SIE_WORKER_FAST_LANE=false`: the same vectors, and the lane takes nothing."""
    ensure_weights()
    c = Cluster(tmp_path, workers=1, SIE_WORKER_FAST_LANE="false")
    try:
        c.add(minilm_doc("acme/minilm-support"))
        cases = json.loads(FIXTURE.read_text())["cases"][:3]
        for case in cases:   # one-item requests: the lane's own case
            r = c.encode_ok("acme/minilm-support", {"items": [{"text": case["text"]}]})
            assert r.status_code == 200, r.text
            assert cosine(r.json()["items"][0]["dense"]["values"], case["dense"]) >= 0.99999
        worker = c.workers[0].url
        assert metric(worker, "sie_worker_encode_items_total", outcome="ok") >= len(cases)
        assert metric(worker, "sie_worker_fast_lane_batches_total") == 0
    finally:
        c.close()


def test_msgpack_in_and_out(cluster):
    r = cluster.encode_ok("default:/acme/minilm-support", {"items": [{"text": "hello"}]},
                          msgpack_body=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/msgpack")
    doc = ndarray_msgpack.unpackb(r.content)
    values = doc["items"][0]["dense"]["values"]
    assert isinstance(values, np.ndarray) and values.shape == (384,)
    assert abs(float(np.linalg.norm(values)) - 1.0) < 1e-4


@pytest.mark.parametrize("content, status, fragment", [
    (b"[1, 2]", 400, "must be an object"),
    (b'{"items": []}', 400, "must not be empty"),
    (b'{"items": [{"text": 5}]}', 400, "not a string"),
    (json.dumps({"items": [{"text": "x"}] * 10_000}).encode(), 400, "too many items"),
    (json.dumps({"items": [{"text": "x" * (1 << 20)}]}).encode(), 413, "1 MiB"),
    (b"{not json", 400, "not valid JSON"),
])
def test_bad_bodies_are_4xx(cluster, content, status, fragment):
    r = cluster.encode("acme/minilm-support", content)
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]["message"]


def test_50_mb_body_is_413(cluster):
    r = cluster.encode("acme/minilm-support", b'{"items": [{"text": "' + b"x" * (50 << 20)
                       + b'"}]}')
    assert r.status_code == 413, r.text[:300]


def test_every_door_of_the_encode_route_answers_alike(cluster):
    """A body with a Content-Length takes the framework-free door; a chunked one (no length)
    goes through Quart; the inference port (SIE_GATEWAY_INFERENCE_PORT) is a third listener.
    Same statuses, bodies and headers, successes and errors alike."""
    urls = {"fast": f"{cluster.gateway.url}/v1/encode/",
            "inference port": f"{cluster.inference_url}/v1/encode/"}

    def doors(path: str, body: bytes, *extra: tuple[str, str]):
        headers = [("Content-Type", "application/json"), *extra]
        got = {name: httpx.post(url + path, content=body, headers=headers, timeout=60)
               for name, url in urls.items()}
        got["chunked"] = httpx.post(urls["fast"] + path, content=iter([body]), headers=headers,
                                    timeout=60)
        assert "content-length" in got["fast"].request.headers
        assert got["chunked"].request.headers.get("transfer-encoding") == "chunked"
        first = got["fast"]
        for name, r in got.items():
            assert r.status_code == first.status_code, (path, name, r.text, first.text)
            assert r.headers["content-type"] == first.headers["content-type"], name
            assert ({k for k in r.headers if k.startswith("x-")}
                    == {k for k in first.headers if k.startswith("x-")}), name
        return got

    got = doors("acme/minilm-support", b'{"items": [{"text": "same door"}]}')
    assert got["fast"].status_code == 200, got["fast"].text
    vectors = {name: r.json()["items"][0]["dense"]["values"] for name, r in got.items()}
    assert vectors["fast"] == vectors["chunked"] == vectors["inference port"]
    for path, body, extra, status in [
            ("nobody/nothing", b'{"items": [{"text": "x"}]}', (), 404),
            ("acme/minilm-support", b'{"items": []}', (), 400),
            ("acme/minilm-support", b'not json', (), 400),
            ("acme/minilm-support", b'{"items": [{"text": "x"}]}',
             (("Authorization", "Bearer a"), ("Authorization", "Bearer b")), 400)]:
        got = doors(path, body, *extra)
        answers = {name: r.json() for name, r in got.items()}
        assert got["fast"].status_code == status, got["fast"].text
        assert answers["fast"] == answers["chunked"] == answers["inference port"], answers


def test_unknown_model_404_and_bundle_conflict_409(cluster):
    r = cluster.encode("nobody/nothing", {"items": [{"text": "x"}]})
    assert r.status_code == 404 and "Unknown model" in r.json()["detail"]["message"]
    r = cluster.encode("sglang:/acme/minilm-support", {"items": [{"text": "x"}]})
    assert r.status_code == 409, r.text


def test_no_worker_for_the_bundle_is_202(cluster):
    cluster.add(minilm_doc("acme/minilm-sglang",
                           adapter="sie_server.adapters.sglang:SGLangEmbeddingAdapter"))
    def added():
        r = cluster.encode("acme/minilm-sglang", {"items": [{"text": "x"}]})
        return r if r.status_code != 404 else None
    r = wait_until(added, 20, what="the sglang model in the gateway's mirror")
    assert r.status_code == 202 and r.json()["status"] == "provisioning"
    assert int(r.headers["Retry-After"]) > 0


def test_model_without_weights_is_502_terminal(cluster):
    cluster.add(minilm_doc("acme/no-weights", hf_id="acme/weights-that-do-not-exist"))
    r = cluster.encode_ok("acme/no-weights", {"items": [{"text": "x"}, {"text": "y"}]})
    assert r.status_code == 502, r.text
    detail = r.json()["detail"]
    assert detail["error"] == "MODEL_LOAD_FAILED" and "Retry-After" not in r.headers
    assert "acme/weights-that-do-not-exist" in detail["message"]


def test_runtime_added_model_is_served(cluster):
    cluster.add(minilm_doc("acme/minilm-later"))
    r = cluster.encode_ok("acme/minilm-later", {"items": [{"text": "added at runtime"}]})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "acme/minilm-later"
    assert r.json()["items"][0]["dense"]["dims"] == 384


def test_concurrent_requests_get_their_own_vectors(cluster):
    texts = [f"sentence number {i} about topic {i * 7}" for i in range(12)]
    single = {t: cluster.encode_ok("acme/minilm-support", {"items": [{"text": t}]})
              .json()["items"][0]["dense"]["values"] for t in texts}
    out: dict[str, list] = {}

    def call(t):
        out[t] = cluster.encode("acme/minilm-support", {"items": [{"text": t}] * 3}).json()
    threads = [threading.Thread(target=call, args=(t,)) for t in texts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in texts:
        for item in out[t]["items"]:
            assert cosine(item["dense"]["values"], single[t]) > 0.99999


def test_no_result_within_the_timeout_is_503_model_loading(cluster):
    impatient = cluster.spawn("sie_gateway", dict(
        cluster.gateway_env, SIE_GATEWAY_REQUEST_TIMEOUT_S="1.5",
        SIE_GATEWAY_INFERENCE_PORT=str(free_port())), "/readyz")
    try:
        wait_until(lambda: cluster.encode("acme/minilm-support", {"items": [{"text": "x"}]},
                                          gateway=impatient).status_code == 200, 30,
                   what="the second gateway serving")
        for worker in cluster.workers:
            worker.pause()   # SIGSTOP: still "healthy" for the heartbeat timeout, answers nothing
        try:
            r = cluster.encode("acme/minilm-support", {"items": [{"text": "late"}]},
                               gateway=impatient)
        finally:
            for worker in cluster.workers:
                worker.resume()
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["error"] == "MODEL_LOADING"
        assert r.headers["Retry-After"] == "5" and r.headers["X-SIE-Error-Code"] == "MODEL_LOADING"
        # the late results arrive for a request nobody waits for any more: dropped, not served
        wait_until(lambda: metric(impatient.url, "sie_gateway_encode_late_results_total") >= 1,
                   30, what="the late result dropped")
    finally:
        impatient.kill()


def test_worker_sigkill_mid_request_still_succeeds(cluster):
    cases = json.loads(FIXTURE.read_text())["cases"]
    long_text = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)
    # long texts (truncated at 256 word pieces) so a batch runs for a few seconds
    body = {"items": [{"text": f"{i} {long_text}"} for i in range(60)]
            + [{"text": c["text"]} for c in cases]}
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        r=cluster.encode("acme/minilm-support", body, timeout=90)))
    thread.start()
    busy = wait_until(lambda: next((w for w in cluster.workers
                                    if metric(w.url, "sie_worker_inflight_items") > 0), None),
                      30, interval=0.02, what="a worker working on the request")
    busy.kill()   # SIGKILL
    thread.join(120)
    r = result["r"]
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == len(body["items"])
    for case, item in zip(cases, items[60:]):
        assert cosine(item["dense"]["values"], case["dense"]) >= 0.99999
    # restore the pool for the tests that follow
    idx = cluster.workers.index(busy)
    cluster.workers[idx] = cluster.spawn("sie_worker", cluster.worker_env, "/readyz",
                                         ["--bundle", "default", "--name", f"w{idx}"])


def test_nats_down_is_503_at_once(tmp_path):
    ensure_weights()
    c = Cluster(tmp_path, workers=1)
    try:
        c.add(minilm_doc("acme/minilm-support"))
        r = c.encode_ok("acme/minilm-support", {"items": [{"text": "hello"}]})
        assert r.status_code == 200, r.text
        c.nats.kill()
        wait_until(lambda: metric(c.gateway.url, "sie_gateway_nats_connected") == 0, 20,
                   what="the gateway noticed NATS is gone")
        r = c.encode("acme/minilm-support", {"items": [{"text": "hello"}]}, timeout=5)
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["error"] == "queue_unavailable"
        # back up: a restarted server has lost the memory stream; both sides re-create it
        c.nats.start()
        r = c.encode_ok("acme/minilm-support", {"items": [{"text": "hello again"}]})
        assert r.status_code == 200, r.text
    finally:
        c.close()


def test_cli_add_wait_loaded_then_encode(cluster, tmp_path):
    import subprocess
    import sys
    doc = tmp_path / "minilm-cli.yaml"
    doc.write_bytes(minilm_doc("acme/minilm-cli"))
    env = dict(os.environ, SIE_CONFIG_URL=cluster.config.url,
               SIE_GATEWAY_URLS=cluster.gateway.url)

    def sie(*args):
        return subprocess.run([sys.executable, "-m", "sie_tools.admin", *args], env=env,
                              capture_output=True, text=True, timeout=120)
    added = sie("models", "add", str(doc), "--wait", "--loaded", "--timeout", "60")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "loaded: every replica reports a worker with acme/minilm-cli loaded" in added.stdout
    assert cluster.loaded_workers("acme/minilm-cli")
    shown = sie("encode", "acme/minilm-cli", "hello")
    assert shown.returncode == 0, shown.stderr
    assert "acme/minilm-cli: 'hello' -> dense 384 dims [-0.0628, 0.0550" in shown.stdout
    as_json = sie("encode", "acme/minilm-cli", "hello", "--json")
    assert json.loads(as_json.stdout)["items"][0]["dense"]["dims"] == 384
    missing = sie("encode", "nobody/nothing", "hello")
    assert missing.returncode == 1 and "404" in missing.stderr

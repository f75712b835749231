"""The data plane: encode through the cluster against the same adapter called in this process.

Processes: `sie-cluster up`'s plan (nats-server with JetStream, sie-config, one worker per bundle
with preload on, two gateways). Three figures, all with sentence-transformers/all-MiniLM-L6-v2 (its weights must be
on the machine: `sie weights pull sentence-transformers/all-MiniLM-L6-v2`):

- throughput: batches of 32 short sentences, client → gateway → JetStream → worker → client,
  beside the adapter called in-process on the same batches; measured alternately, round by
  round, so other load on the machine disturbs both about equally; the ratio of medians;
- one-item overhead: a one-item request's end-to-end time minus the adapter's own time for it
  (the worker's `x-inference-time-ms`), requests one after another, through each gateway's
  main port (hypercorn) and its inference port (`SIE_GATEWAY_INFERENCE_PORT`); beside them
  hypercorn's own floor: the same client's round trips to a bare ASGI app on hypercorn-trio
  (`sie_bench.baseline`) with the same request and answer bytes;
- model POSTed → first 200 from `/v1/encode` on both gateways (preload on), per fresh model id.

The cluster is timed through `RawHTTP` (one kept-alive connection, h11), not httpx: httpx's own
per-request work is a large part of a one-item request's few milliseconds, and it is the
client's cost, not the cluster's.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import orjson
import trio
import yaml

from sie_actors.inference.loading import load_adapter
from sie_actors.procs import ServiceProcess, child_env, wait_until
from sie_bench.adapter_compare import sentences
from sie_bench.cluster import MainCluster, wait_ready
from sie_bench.rawhttp import RawHTTP
from sie_bench.stats import Row, Target

NAME = "encode"
MAIN_PORT = "the main port (hypercorn)"
INFERENCE_PORT = "the inference port"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"


def doc(model_id: str) -> dict:
    return {"sie_id": model_id, "hf_id": MINILM, "profiles": {"default": {
        "adapter_path": ST, "max_batch_tokens": 8192,
        "adapter_options": {"loadtime": {}, "runtime": {"pooling": "mean", "normalize": True}}}}}


def _encode(client: httpx.Client, gateway: str, model: str, texts: list[str]) -> httpx.Response:
    return client.post(f"{gateway}/v1/encode/{model}",
                       json={"items": [{"text": t} for t in texts]})


async def _post_encode(raw: RawHTTP, model: str, texts: list[str]) -> dict[str, str]:
    status, headers, body = await raw.post(
        f"/v1/encode/{model}", orjson.dumps({"items": [{"text": t} for t in texts]}))
    if status != 200:
        raise RuntimeError(f"encode: HTTP {status} {body[:200]!r}")
    return headers


async def _cluster_round(gateway: str, model: str, batches: list[list[str]]) -> float:
    """Seconds to encode every batch, one request after another on one connection."""
    async with RawHTTP(gateway) as raw:
        t0 = time.perf_counter()
        for batch in batches:
            await _post_encode(raw, model, batch)
        return time.perf_counter() - t0


async def _singles(doors: dict[str, list[str]], bare: str, model: str, texts: list[str],
                   count: int) -> tuple[dict[str, list[float]], list[float], list[float]]:
    """`count` one-item requests per door (ms): per door, end to end − the adapter's time; and
    end to end. Requests go one after another on one connection, in blocks that take turns
    between the doors and their gateways, so a slow minute of the machine hits both doors.
    Then the HTTP server's floor: the same request bytes to the bare app `bare` (which answers
    with a real encode's bytes), each followed by a pause as long as the adapter's median time,
    so that server idles between requests as a gateway does while the worker computes (an
    idle process answers slower than a busy one)."""
    overhead: dict[str, list[float]] = {name: [] for name in doors}
    e2e, adapter = [], []
    block = max(1, min(25, count))
    for turn in range(-(-count // block)):
        for name, urls in doors.items():
            async with RawHTTP(urls[turn % len(urls)]) as raw:
                for i in range(min(block, count - turn * block)):
                    t0 = time.perf_counter()
                    headers = await _post_encode(raw, model, [texts[i % len(texts)]])
                    total = (time.perf_counter() - t0) * 1000
                    e2e.append(total)
                    adapter.append(float(headers["x-inference-time-ms"]))
                    overhead[name].append(total - adapter[-1])
    floor = []
    pause = statistics.median(adapter) / 1000
    async with RawHTTP(bare) as raw:
        for i in range(count):
            body = orjson.dumps({"items": [{"text": texts[i % len(texts)]}]})
            t0 = time.perf_counter()
            status, _, _ = await raw.post(f"/v1/encode/{model}", body)
            floor.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"the bare HTTP floor answered {status}")
            await trio.sleep(pause)
    return overhead, e2e, floor


def _start_floor(cluster: MainCluster, answer: bytes) -> ServiceProcess:
    """The bare hypercorn app that answers every request with `answer` (see `_singles`)."""
    body_file = cluster.fleet.workdir / "baseline-encode-answer.json"
    body_file.write_bytes(answer)
    bare = cluster.fleet.service("sie_bench.baseline", "baseline-encode", child_env(),
                                 ["--body", str(body_file)])
    wait_ready([bare], 20.0, "/healthz")
    return bare


def measure(workdir: Path, rounds: int, singles: int, fresh_models: int) -> list[Row]:
    # sie-cluster's plan (its workers preload), each gateway with an inference port
    cluster = MainCluster(workdir, models=0, inference_ports=True)
    try:
        cluster.start()
        config, gateways = cluster.config, cluster.gateways
        http = httpx.Client(timeout=60)
        model = "bench/minilm"
        r = http.post(config.url + "/v1/configs/models", content=yaml.safe_dump(doc(model)),
                      headers={"Content-Type": "application/x-yaml"})
        r.raise_for_status()
        wait_until(lambda: _encode(http, gateways[0].url, model, ["warm"]).status_code == 200,
                   60, interval=0.05, what="the bench model served")

        texts = sentences(256)
        adapter = load_adapter(doc(model))
        batches = [texts[i:i + 32] for i in range(0, len(texts), 32)]
        cluster_rate, local_rate = [], []
        for _ in range(rounds):
            seconds = trio.from_thread.run(_cluster_round, gateways[0].url, model, batches)
            cluster_rate.append(len(texts) / seconds)
            t0 = time.perf_counter()
            for batch in batches:
                adapter.encode(batch)
            local_rate.append(len(texts) / (time.perf_counter() - t0))
        ratio = statistics.median(cluster_rate) / statistics.median(local_rate)

        bare = _start_floor(cluster, _encode(http, gateways[0].url, model, [texts[0]]).content)
        doors = {MAIN_PORT: [g.url for g in gateways], INFERENCE_PORT: cluster.inference_urls}
        overhead, e2e, floor = trio.from_thread.run(
            _singles, doors, bare.url, model, texts, singles)
        bare.kill()

        first_200 = []
        for i in range(fresh_models):
            fresh = f"bench/minilm-fresh-{i}"
            t0 = time.perf_counter()
            r = http.post(config.url + "/v1/configs/models", content=yaml.safe_dump(doc(fresh)),
                          headers={"Content-Type": "application/x-yaml"})
            r.raise_for_status()
            for gateway in gateways:
                wait_until(lambda g=gateway: _encode(http, g.url, fresh, ["first"]).status_code
                           == 200, 60, interval=0.02, what=f"{fresh} served")
            first_200.append((time.perf_counter() - t0) * 1000)
        http.close()
    finally:
        cluster.close()
    return [
        Row(NAME, "cluster encode throughput, batches of 32 (sentences/s)", "1/s", cluster_rate,
            note=f"in-process adapter: median {statistics.median(local_rate):.1f}/s; "
                 f"ratio of medians {ratio:.2f} (target >= 0.8)"),
        Row(NAME, "cluster / in-process throughput, per round", "x",
            [c / l for c, l in zip(cluster_rate, local_rate)], Target("p50", ">=", 0.8)),
        Row(NAME, f"one-item request through {INFERENCE_PORT}: end to end minus the adapter's "
            "own time", "ms", overhead[INFERENCE_PORT], Target("p50", "<=", 3),
            note=f"end to end p50 {statistics.median(e2e):.2f} ms, both doors"),
        Row(NAME, f"one-item request through {MAIN_PORT}: end to end minus the adapter's own "
            "time", "ms", overhead[MAIN_PORT], Target("p50", "<=", 3),
            note=f"above the HTTP server's floor (next row): p50 "
            f"{statistics.median(overhead[MAIN_PORT]) - statistics.median(floor):.2f} ms"),
        Row(NAME, "one-item request: hypercorn's own floor (bare hypercorn-trio ASGI app, same "
            "client, same request and answer bytes, paced like the encodes)", "ms", floor),
        Row(NAME, "model POSTed → first 200 from /v1/encode on both gateways (preload)", "ms",
            first_200, Target("p50", "<=", 2000)),
    ]


async def run(workdir: Path, rounds: int, singles: int, fresh_models: int) -> list[Row]:
    return await trio.to_thread.run_sync(measure, workdir, rounds, singles, fresh_models)

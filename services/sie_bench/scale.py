"""Scale: write latency with N models vs with 100, gateway cold bootstrap of N models, and
sie-config's memory with N models (plus its start, list and export times, for comparison with
the original's figures).

Each size gets the same surroundings: nats-server, sie-config with a local store restored at
start (`SIE_CONFIG_RESTORE=true`), and two gateways that bootstrap from it and apply every delta.
The store is filled directly in the original's layout (a store that grew by N writes).

* Write latency: sequential POSTs of new models over one kept-alive connection; the ratio row
  compares the medians per block of writes (N vs 100).
* Cold bootstrap: a new gateway process is spawned against the big sie-config; measured from
  spawn to `/readyz` 200 (which needs the whole snapshot applied). The same against the small
  sie-config is shown, to separate interpreter start-up from the snapshot's cost.
* RSS: VmRSS of the sie-config process (from /proc/PID/status) after each phase: start, list,
  export, writes, bootstraps; VmHWM (its peak) is in the note.
"""

from __future__ import annotations

from pathlib import Path

import trio

from sie_bench.cluster import Fleet, await_ready, client, model_yaml, now, preload_store, spread_id
from sie_bench.procfs import memory_kib
from sie_bench.stats import Row, Target, percentile

NAME = "scale"
BLOCKS = 5


async def writes(url: str, count: int, prefix: str, warmup: int = 5) -> list[float]:
    samples = []
    async with client(url) as http:
        for i in range(warmup + count):
            body = model_yaml(spread_id(prefix, i))
            started = now()
            r = await http.post("/v1/configs/models", content=body)
            elapsed = (now() - started) * 1000
            if r.status_code != 201:
                raise RuntimeError(f"write: {r.status_code} {r.text[:200]}")
            if i >= warmup:
                samples.append(elapsed)
            await trio.sleep(0.005)
    return samples


async def cold_starts(fleet: Fleet, config_url: str, nats_url: str, runs: int,
                      label: str) -> list[float]:
    samples = []
    for i in range(runs):
        started = now()
        gateway = fleet.gateway(f"cold-{label}-{i}", config_url, nats_url)
        await await_ready([gateway], timeout=120)
        samples.append((now() - started) * 1000)
        gateway.kill()
        fleet.processes.remove(gateway)
    return samples


def block_medians(samples: list[float], blocks: int) -> list[float]:
    size = max(1, len(samples) // blocks)
    chunks = [sorted(samples[i:i + size]) for i in range(0, size * blocks, size)]
    return [percentile(c, 50) for c in chunks if c]


async def cluster(fleet: Fleet, label: str, models: int):
    store = fleet.workdir / f"store-{label}"
    preload_store(store, models)
    nats = fleet.nats(f"nats-{label}")
    started = now()
    config = fleet.config(f"sie-config-{label}", nats.url, store)
    await await_ready([config], timeout=180)
    start_ms = (now() - started) * 1000
    gateways = [fleet.gateway(f"gateway-{label}-{i}", config.url, nats.url) for i in range(2)]
    await await_ready(gateways, timeout=120)
    return nats, config, gateways, start_ms


async def run(workdir: Path, small: int, big: int, count: int, bootstraps: int) -> list[Row]:
    rows: list[Row] = []
    with Fleet(workdir) as fleet:
        nats, config, gateways, _ = await cluster(fleet, "small", small)
        small_writes = await writes(config.url, count, "scale-small")
        small_cold = await cold_starts(fleet, config.url, nats.url, bootstraps, "small")
        fleet.close()

        nats, config, gateways, start_ms = await cluster(fleet, "big", big)
        rss: list[float] = []

        def sample_rss() -> None:
            rss.append(memory_kib(config.pid)["VmRSS"] / 1024)

        sample_rss()
        list_ms, export_ms = [], []
        async with client(config.url, timeout=120) as http:
            for _ in range(max(3, bootstraps)):
                started = now()
                r = await http.get("/v1/configs/models")
                list_ms.append((now() - started) * 1000)
                assert r.status_code == 200 and len(r.json()["models"]) >= big
            sample_rss()
            for _ in range(max(2, bootstraps)):
                started = now()
                r = await http.get("/v1/configs/export")
                export_ms.append((now() - started) * 1000)
                assert r.status_code == 200
            sample_rss()
        big_writes = await writes(config.url, count, "scale-big")
        sample_rss()
        big_cold = await cold_starts(fleet, config.url, nats.url, bootstraps, "big")
        sample_rss()
        hwm = memory_kib(config.pid)["VmHWM"] / 1024
    p50_small = percentile(sorted(small_writes), 50)
    ratios = [b / s for b, s in zip(block_medians(big_writes, BLOCKS),
                                    block_medians(small_writes, BLOCKS))]
    rows += [
        Row(NAME, f"write latency with {small} models", "ms", small_writes,
            note="store + NATS, 2 gateways"),
        Row(NAME, f"write latency with {big:,} models", "ms", big_writes,
            note="store + NATS, 2 gateways"),
        Row(NAME, f"write latency p50 ratio {big:,} vs {small} models", "x", ratios,
            Target("p50", "<=", 2.0), note=f"medians of {BLOCKS} blocks; p50 at {small}: "
                                            f"{p50_small:.1f} ms"),
        Row(NAME, f"gateway cold bootstrap of {big:,} models", "ms", big_cold,
            Target("max", "<=", 3000), note="spawn → /readyz 200"),
        Row(NAME, f"gateway cold start with {small} models", "ms", small_cold,
            note="interpreter + imports + small snapshot"),
        Row(NAME, f"sie-config RSS with {big:,} models", "MiB", rss, Target("max", "<=", 300),
            note=f"after start/list/export/writes/bootstraps; peak (VmHWM) {hwm:.0f} MiB"),
        Row(NAME, f"sie-config start with {big:,} models (restore)", "ms", [start_ms],
            note="spawn → /readyz 200; original: 7 s"),
        Row(NAME, f"sie-config GET /v1/configs/models with {big:,} models", "ms", list_ms,
            note="original: 20 req/s"),
        Row(NAME, f"sie-config GET /v1/configs/export with {big:,} models", "ms", export_ms,
            note="first is cold; original: 8.7 s"),
    ]
    return rows

"""POST 201 → served by both gateways, and POST 201 → `/status` all acked on both gateways.

One write at a time on the main cluster (real sie-config with store and NATS, one real worker
per bundle, two gateways). The clock starts when the 201 arrives. Each gateway is polled over a
kept-alive connection with no pause, one request in flight per gateway (a raw HTTP/1.1 client, so the
poller itself costs little CPU), so the resolution is one HTTP round trip (~1 ms) and the poll
adds one request at a time to the measured gateway.
Writes rotate over the bundles, so every worker acks in turn.
"""

from __future__ import annotations

import random

import trio

from sie_bench.cluster import (MainCluster, bundle_for, bundle_names, client, model_yaml, now,
                               spread_id, wait_dialled)
from sie_bench.rawhttp import RawHTTP, served
from sie_bench.stats import Row, Target
from sie_tools.admin.http import model_path
from sie_tools.admin.readiness import report_of

NAME = "propagation"


async def wait_workers(cluster: MainCluster, timeout: float = 30.0) -> None:
    async with client() as http:
        for gateway in cluster.gateways:
            await wait_dialled(http, gateway.url + "/readyz", len(cluster.workers), timeout)


async def _acked(http: RawHTTP, model_id: str) -> None:
    path = model_path(model_id, "/status")
    while True:
        status, body = await http.get(path)
        if report_of(path, status, body).acked:
            return


async def run(cluster: MainCluster, writes: int, warmup: int = 5,
              timeout: float = 10.0) -> list[Row]:
    await wait_workers(cluster)
    bundles = bundle_names()
    served_ms: list[float] = []
    acked_ms: list[float] = []
    post_ms: list[float] = []
    # one client per gateway: its connection stays alive between polls
    polls = [RawHTTP(g.url) for g in cluster.gateways]
    async with client(cluster.config.url) as writer:
        for i in range(warmup + writes):
            model_id = spread_id("prop", i)
            body = model_yaml(model_id, bundle_for(i * 5, bundles) if i % 2 else "default")
            started = now()
            r = await writer.post("/v1/configs/models", content=body)
            t201 = now()
            if r.status_code != 201:
                raise RuntimeError(f"write {model_id}: HTTP {r.status_code} {r.text[:200]}")
            with trio.fail_after(timeout):
                async with trio.open_nursery() as nursery:
                    for http, gw in zip(polls, cluster.gateways):
                        nursery.start_soon(served, http, model_path(model_id))
                t_served = now()
                async with trio.open_nursery() as nursery:
                    for http, gw in zip(polls, cluster.gateways):
                        nursery.start_soon(_acked, http, model_id)
                t_acked = now()
            if i >= warmup:
                post_ms.append((t201 - started) * 1000)
                served_ms.append((t_served - t201) * 1000)
                acked_ms.append((t_acked - t201) * 1000)
            await trio.sleep(random.uniform(0.005, 0.02))
    for http in polls:
        await http.aclose()
    return [
        Row(NAME, "POST 201 → model served by both gateways", "ms", served_ms,
            Target("p99", "<=", 20)),
        Row(NAME, "POST 201 → /status all acked on both gateways", "ms", acked_ms,
            Target("p99", "<=", 100), note=f"1 worker per bundle, {len(bundles)} bundles"),
        Row(NAME, "POST latency on this cluster", "ms", post_ms,
            note=f"{cluster.models} models, store + NATS"),
    ]

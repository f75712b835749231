"""Hot reads, 32 kept-alive connections, closed loop: on one gateway `GET /v1/configs/models`
and `GET /v1/configs/models/{id}/status`; on sie-config `GET /v1/configs/models` and
`GET /v1/configs/epoch`, each side by side with a bare hypercorn ASGI app serving the same bytes
(`sie_bench.baseline`), measured in the same run, as a ratio.

The load comes from `sie_bench.loadgen` in its own process. While it runs, the gateway's CPU is
read from /proc/PID/stat, and the generator reports its own: a gateway near one full core with
the generator well below one core means the number measured is the gateway's, not the
generator's (one trio process serves on one core; this machine has two).
"""

from __future__ import annotations

import json
import sys

import httpx

import trio

from sie_actors.procs import child_env
from sie_bench.cluster import MainCluster, wait_ready
from sie_bench.procfs import CpuMeter
from sie_bench.stats import Row, Target

NAME = "hotreads"
WARMUP = 0.5


async def load(gateway, path: str, rounds: int, seconds: float, connections: int) -> tuple[dict, float]:
    argv = [sys.executable, "-m", "sie_bench.loadgen", "--url", gateway.url, "--path", path,
            "--connections", str(connections), "--rounds", str(rounds),
            "--seconds", str(seconds), "--warmup", str(WARMUP)]
    meter = CpuMeter(gateway.pid)
    async with trio.open_nursery() as nursery:
        result: dict = {}

        async def generate() -> None:
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True,
                                          check=False)
            if done.returncode != 0:
                raise RuntimeError(f"loadgen failed: {done.stderr.decode()[-2000:]}")
            result.update(json.loads(done.stdout))

        nursery.start_soon(generate)
        await trio.sleep(WARMUP + 0.3)  # interpreter start + warm-up
        meter.start()
        await trio.sleep(rounds * seconds * 0.8)
        gateway_cpu = meter.stop()
    return result, gateway_cpu


async def run(cluster: MainCluster, rounds: int, seconds: float, connections: int) -> list[Row]:
    gateway = cluster.gateways[0]
    model = cluster.model_ids[0]
    rows: list[Row] = []
    for label, path in (("GET /v1/configs/models", "/v1/configs/models"),
                        ("GET /v1/configs/models/{id}/status", f"/v1/configs/models/{model}/status")):
        result, gateway_cpu = await load(gateway, path, rounds, seconds, connections)
        rps = [r["rps"] for r in result["rounds"]]
        errors = sum(r["errors"] for r in result["rounds"])
        if errors:
            raise RuntimeError(f"{label}: {errors} non-200 answers under load")
        note = (f"{connections} conns, {len(cluster.model_ids) + 5} models, gateway CPU "
                f"{gateway_cpu:.2f} core, loadgen CPU {result['cpu_share']:.2f} core, "
                f"{result['reconnects']} reconnects")
        rows.append(Row(NAME, f"hot reads {label}", "req/s", rps, Target("p50", ">=", 1500),
                        note=note))
        rows.append(Row(NAME, f"hot reads {label}: request latency (p50 per round)", "ms",
                        [r["latency_ms"]["p50"] for r in result["rounds"]]))
    return rows + await run_config(cluster, rounds, seconds, connections)


async def run_config(cluster: MainCluster, rounds: int, seconds: float,
                     connections: int) -> list[Row]:
    """sie-config's hot reads and the bare-ASGI floor for the same bytes, one after the other."""
    config = cluster.config
    rows: list[Row] = []
    for label, path in (("GET /v1/configs/models", "/v1/configs/models"),
                        ("GET /v1/configs/epoch", "/v1/configs/epoch")):
        body = httpx.get(config.url + path, timeout=10).content
        body_file = cluster.fleet.workdir / f"baseline-body{path.replace('/', '_')}.json"
        body_file.write_bytes(body)
        baseline = cluster.fleet.service("sie_bench.baseline", f"baseline{path.replace('/', '-')}",
                                         child_env(), ["--body", str(body_file)])
        try:
            await trio.to_thread.run_sync(wait_ready, [baseline], 20.0, path)
            ours, ours_cpu = await load(config, path, rounds, seconds, connections)
            floor, floor_cpu = await load(baseline, path, rounds, seconds, connections)
        finally:
            baseline.kill()
        for result in (ours, floor):
            errors = sum(r["errors"] for r in result["rounds"])
            if errors:
                raise RuntimeError(f"sie-config {label}: {errors} non-200 answers under load")
        ours_rps = [r["rps"] for r in ours["rounds"]]
        floor_rps = [r["rps"] for r in floor["rounds"]]
        note = f"{connections} conns, {len(body)} B body"
        rows.append(Row(NAME, f"sie-config hot reads {label}", "req/s", ours_rps,
                        note=f"{note}, sie-config CPU {ours_cpu:.2f} core"))
        rows.append(Row(NAME, f"bare hypercorn ASGI, same body as {label}", "req/s", floor_rps,
                        note=f"{note}, server CPU {floor_cpu:.2f} core"))
        rows.append(Row(NAME, f"sie-config {label} / bare ASGI (per round)", "ratio",
                        [a / b for a, b in zip(ours_rps, floor_rps) if b > 0],
                        note="1.0 = as fast as the HTTP server alone"))
    return rows

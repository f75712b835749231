"""What open fleet pages cost a gateway: 20 live feeds (`GET /v1/fleet/stream`) on a gateway with
1,000 worker sessions at 1 s heartbeats.

The workers are `sie_bench.fleet` (one helper process, the real `/ws/status` protocol), all
reporting the bundle's expected hash, so the fleet is steady: heartbeats arrive, nothing changes.
The gateway's CPU is read from /proc over 1 s windows, first with no page open, then with the
pages open (each stream read to the end of every line by this process, as a browser would). Two
figures come out: the difference of the two means (everything the pages cost: the feed's tick,
keepalives, the HTTP streams), and the feed's own CPU as the gateway counts it
(`sie_gateway_fleet_feed_cpu_seconds`, thread CPU spent comparing and building snapshots).

Then a rollout, pushed: every worker switches hash at once, and each page's feed is watched until
its latest snapshot shows the whole bundle on the new side; per round, the slowest page.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import trio

from sie_actors.http.metrics_text import sample_sum
from sie_bench.cluster import Fleet, client, now, wait_dialled
from sie_bench.procfs import CpuMeter
from sie_bench.sessions import open_fake_fleet
from sie_bench.stats import Row, Target

NAME = "pages"
FEED_CPU = "sie_gateway_fleet_feed_cpu_seconds_total"


class Page:
    """One open page: the latest snapshot's default-bundle counts and when it came."""

    def __init__(self) -> None:
        self.snapshots = 0
        self.size = 0
        self.acked = 0
        self.pending = 0
        self.at = 0.0
        self.first = trio.Event()
        self.changed = trio.Event()

    async def follow(self, http: httpx.AsyncClient, url: str) -> None:
        async with http.stream("GET", url + "/v1/fleet/stream") as response:
            if response.status_code != 200:
                raise RuntimeError(f"/v1/fleet/stream answered {response.status_code}")
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                body = orjson.loads(line)
                bundle = next((b for b in body["bundles"] if b["bundle_id"] == "default"), None)
                self.snapshots += 1
                self.size = len(line)
                self.at = now()
                if bundle is not None:
                    self.acked = bundle["acked_count"]
                    self.pending = bundle["pending_count"]
                self.first.set()
                self.changed.set()
                self.changed = trio.Event()


async def feed_cpu(http: httpx.AsyncClient) -> float:
    return sample_sum((await http.get("/metrics")).text, FEED_CPU)


async def cpu_windows(pid: int, windows: int) -> list[float]:
    samples = []
    for _ in range(windows):
        meter = CpuMeter(pid).start()
        await trio.sleep(1.0)
        samples.append(meter.stop())
    return samples


async def all_on_side(pages: list[Page], count: int, side: str, since: float,
                      timeout: float) -> float:
    """ms from `since` until the last page's feed showed all `count` workers on `side`."""
    with trio.fail_after(timeout):
        for page in pages:
            while (page.acked if side == "acked" else page.pending) != count:
                await page.changed.wait()
    return (max(page.at for page in pages) - since) * 1000


async def run(workdir: Path, count: int, heartbeat: float, windows: int, pages_open: int,
              rounds: int) -> list[Row]:
    with Fleet(workdir) as fleet:
        async with open_fake_fleet(workdir, count, heartbeat) as (workers, urls):
            gateway = fleet.gateway("gateway", None, None, urls, seed=True)
            async with client(gateway.url) as http:
                await wait_dialled(http, "/readyz", count, timeout=120, interval=0.1)
                snapshot = (await http.get("/v1/fleet")).json()
                expected = next(b for b in snapshot["bundles"]
                                if b["bundle_id"] == "default")["expected_bundle_config_hash"]
                await workers.command(f"hash {expected} push")
                await trio.sleep(2 * heartbeat)  # steady state: every worker acked

                without = await cpu_windows(gateway.pid, windows)

                pages = [Page() for _ in range(pages_open)]
                async with client(timeout=None) as streams, trio.open_nursery() as nursery:
                    for page in pages:
                        nursery.start_soon(page.follow, streams, gateway.url)
                    with trio.fail_after(60):
                        for page in pages:
                            await page.first.wait()
                    await trio.sleep(2 * heartbeat)
                    cpu0, t0 = await feed_cpu(http), now()
                    received0 = sum(p.snapshots for p in pages)
                    with_pages = await cpu_windows(gateway.pid, windows)
                    steady_snapshots = sum(p.snapshots for p in pages) - received0
                    feed_core = (await feed_cpu(http) - cpu0) / (now() - t0)
                    size_kb = max(p.size for p in pages) / 1024

                    rollout: list[float] = []
                    for i in range(rounds):
                        for value, side in ((f"rollout{i}", "pending"), (expected, "acked")):
                            await workers.command(f"hash {value} push")
                            since = now()
                            rollout.append(await all_on_side(pages, count, side, since, 30))
                    nursery.cancel_scope.cancel()
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)
    delta = (mean(with_pages) - mean(without)) * 1000
    return [
        Row(NAME, f"gateway CPU, {count} sessions, no page open", "core", without,
            note=f"1 s windows, {heartbeat:g} s heartbeats"),
        Row(NAME, f"gateway CPU, {count} sessions, {pages_open} fleet pages open", "core",
            with_pages, note=f"difference of means {delta:+.1f} millicore"),
        Row(NAME, f"cost of {pages_open} open fleet pages (CPU with - without)", "mcore",
            [delta], Target("max", "<=", 50),
            note="difference of the two rows above; a shared machine's noise included"),
        Row(NAME, f"fleet feed's own CPU, {pages_open} pages on {count} workers", "mcore",
            [feed_core * 1000], Target("max", "<=", 50),
            note=f"sie_gateway_fleet_feed_cpu_seconds; {steady_snapshots} snapshots received "
                 f"by the pages while steady"),
        Row(NAME, f"all {count} workers switch (pushed) → all {pages_open} pages show it", "ms",
            rollout, note=f"{rounds * 2} switches; includes {count} frames reaching the gateway"),
        Row(NAME, f"fleet snapshot size with {count} workers", "KiB", [size_kb]),
    ]

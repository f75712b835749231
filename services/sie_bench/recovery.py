"""Recovery: a write whose delta died with a NATS restart, and a delta lost by one gateway.

Topology: sie-config publishes on its own nats-server; each gateway listens on a nats-server of
its own, fed by a relay in this process that forwards `sie.config.models._all` and can drop the
deltas of chosen models for chosen gateways. That makes the loss certain and repeatable, which
killing a server at the right microsecond cannot. The gateways' epoch poll is set to 300 s, so
what recovers is the mechanism under test, not the poll.

* NATS restart: a write is made and its delta dropped for both gateways (it "was in flight when
  the server died"); both gateway-side servers are SIGKILLed and started again on their ports.
  Measured: from both ports accepting again until both gateways serve the model (reconnect,
  epoch check, resync).
* Gap: the delta of write A is dropped for gateway-1 only; write B follows. Measured: from B's
  201 until gateway-1 serves A (gap detected on B's delta, resync).
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import trio

from sie_actors.domain.delta import ALL_SUBJECT
from sie_actors.http.metrics_text import sample_sum
from sie_actors.nats.link import NatsLink, NatsSettings
from sie_actors.procs.polling import wait_for

from sie_bench.cluster import Fleet, await_ready, client, model_yaml, now, preload_store
from sie_bench.rawhttp import RawHTTP, served
from sie_tools.admin.http import model_path
from sie_bench.stats import Row, Target

NAME = "recovery"


class Relay:
    """`_all` from the source server to one link per gateway, minus the deltas told to drop."""

    def __init__(self, source: NatsLink, sinks: list[NatsLink]) -> None:
        self.source = source
        self.sinks = sinks
        self.drop: list[set[str]] = [set() for _ in sinks]  # model ids to drop, per sink
        self.dropped: list[set[str]] = [set() for _ in sinks]
        self._changed = trio.Event()

    async def run(self, messages) -> None:
        async for raw in messages:
            model_id = orjson.loads(raw).get("model_id")
            for k, sink in enumerate(self.sinks):
                if model_id in self.drop[k]:
                    self.dropped[k].add(model_id)
                    continue
                if sink.connected:
                    await sink.publish_confirmed([(ALL_SUBJECT, raw)])
            self._changed.set()
            self._changed = trio.Event()

    async def wait_dropped(self, model_id: str, sinks: list[int], timeout: float = 10) -> None:
        with trio.fail_after(timeout):
            while not all(model_id in self.dropped[k] for k in sinks):
                await self._changed.wait()


async def wait_connected(links: list[NatsLink], timeout: float = 20) -> None:
    await wait_for(lambda: all(link.connected for link in links), timeout,
                   "every NATS link connected")


async def run(workdir: Path, models: int, restarts: int, gaps: int,
              outage_max: float = 1.5) -> list[Row]:
    with Fleet(workdir) as fleet:
        store = workdir / "store"
        preload_store(store, models)
        source_nats = fleet.nats("nats-config")
        edge = [fleet.nats(f"nats-gateway-{i}") for i in range(2)]
        config = fleet.config("sie-config", source_nats.url, store)
        await await_ready([config])
        gateways = [fleet.gateway(f"gateway-{i}", config.url, edge[i].url,
                                  SIE_GATEWAY_POLL_INTERVAL_S="300") for i in range(2)]
        await await_ready(gateways)
        restart_ms: list[float] = []
        outage_ms: list[float] = []
        gap_ms: list[float] = []
        async with trio.open_nursery() as nursery:
            source = NatsLink(NatsSettings(url=source_nats.url, name="bench-relay-in"))
            sinks = [NatsLink(NatsSettings(url=e.url, name=f"bench-relay-out-{i}",
                                           reconnect_time_wait=0.1))
                     for i, e in enumerate(edge)]
            for link in (source, *sinks):
                await nursery.start(link.run)
            relay = Relay(source, sinks)
            nursery.start_soon(relay.run, await source.subscribe(ALL_SUBJECT))
            await wait_connected([source, *sinks])
            polls = [RawHTTP(g.url) for g in gateways]
            async with client(config.url) as writer, client() as http:
                async def write(model_id: str) -> float:
                    r = await writer.post("/v1/configs/models", content=model_yaml(model_id))
                    if r.status_code != 201:
                        raise RuntimeError(f"write {model_id}: {r.status_code} {r.text[:200]}")
                    return now()

                async def on_all(model_id: str, which: list[int], timeout: float = 20) -> float:
                    with trio.fail_after(timeout):
                        async with trio.open_nursery() as n:
                            for k in which:
                                n.start_soon(served, polls[k], model_path(model_id), 0.001)
                    return now()

                # warm-up: one delivered write
                await write("recovery/warmup")
                await on_all("recovery/warmup", [0, 1])

                for i in range(restarts):
                    model_id = f"recovery/restart{i:03d}"
                    for k in range(2):
                        relay.drop[k].add(model_id)
                    await write(model_id)
                    await relay.wait_dropped(model_id, [0, 1])
                    killed = now()
                    # SIGKILL both gateway-side servers, keep them down for a random while
                    # (so the clients' reconnect timers are at any phase), start them again
                    for server in edge:
                        server.kill()
                    await trio.sleep(random.uniform(0.0, outage_max))
                    async with trio.open_nursery() as n:
                        for server in edge:
                            n.start_soon(trio.to_thread.run_sync, server.start)
                    back = now()
                    done = await on_all(model_id, [0, 1])
                    restart_ms.append((done - back) * 1000)
                    outage_ms.append((back - killed) * 1000)
                    await wait_connected(sinks)

                for i in range(gaps):
                    lost, later = f"recovery/lost{i:03d}", f"recovery/next{i:03d}"
                    relay.drop[1].add(lost)
                    await write(lost)
                    await relay.wait_dropped(lost, [1])
                    await on_all(lost, [0])
                    t_later = await write(later)
                    done = await on_all(lost, [1])
                    gap_ms.append((done - t_later) * 1000)
                    await on_all(later, [0, 1])
                metrics = (await http.get(gateways[1].url + "/metrics")).text
            for poll in polls:
                await poll.aclose()
            nursery.cancel_scope.cancel()
    gap_resyncs = sample_sum(metrics, "sie_gateway_config_resyncs_total", cause="gap")
    return [
        Row(NAME, "NATS restarted → write made just before is on every gateway", "ms",
            restart_ms, Target("max", "<=", 1000),
            note=f"from NATS back; outages {min(outage_ms):.0f}-{max(outage_ms):.0f} ms; poll 300 s"),
        Row(NAME, "delta lost by one gateway (gap) → recovered", "ms", gap_ms,
            Target("max", "<=", 1000),
            note=f"from the next write's 201; poll 300 s; gap resyncs {gap_resyncs:g}"),
    ]

"""The observer: probes every process of the cluster over HTTP, all the time, and records what
each one says about its position.

One probe reads, concurrently: sie-config's `/v1/configs/epoch`; every gateway's
`/v1/configs/sync` and `/v1/configs/bundles` (healthy workers per bundle); every worker's
`/v1/worker/status`. A node that does not answer is `None` in that probe. The (epoch, generation)
of sie-config and of each gateway is recorded in the history whenever it changes, which is what
the checker's epoch-regression rule reads.

Two judgements are made from probes (pure functions, tested by themselves):
- `caught_up`: after a heal, the cluster has caught up with sie-config (writes keep coming, so
  "equal" is a moving target): every gateway is bootstrapped on sie-config's generation at or
  past the epoch sie-config had right after the heal, sees all workers, and every worker is ready
  and reports a hash sie-config had for its bundle since the heal: one its probes reported, or
  one its delta log says a write after the heal left (`/v1/configs/deltas`; with only the
  probes' samples, a worker that was up to date between two samples of a busy bundle looked
  behind until writes paused);
- `convergence_problems`: at the end, with the workload stopped, every gateway equals sie-config
  exactly (epoch, generation, `bundles_hash`, each `bundle_config_hash`) and every worker's hash
  is sie-config's for its bundle. Then every model's `/status` must be all-acked everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping

import httpx
import trio

from sie_chaos.history import History
from sie_tools.admin.poller import fetch_status_async

SYNC_FIELDS = ("epoch", "generation", "bundles_hash", "bundle_config_hashes")


@dataclass(frozen=True)
class Targets:
    config: str                               # sie-config's base URL
    gateways: Mapping[str, str]               # name -> base URL
    workers: Mapping[str, tuple[str, str]]    # name -> (base URL, bundle)

    @property
    def expected_workers(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for _url, bundle in self.workers.values():
            counts[bundle] += 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Probe:
    started: float                                # trio time when the probe started
    config: dict | None
    gateways: dict[str, dict | None]
    gateway_workers: dict[str, dict[str, int] | None]
    workers: dict[str, dict | None]
    finished: float = 0.0
    answered: Mapping[str, float] = field(default_factory=dict)  # node -> its last answer's arrival


def lagging(probe: Probe, floor_epoch: int, seen_hashes: Mapping[str, set[str]],
            expected_workers: Mapping[str, int]) -> dict[str, str]:
    """Each gateway and worker that has not caught up yet, with why (the `caught_up` rule);
    {} when all have. sie-config's own answer is the reference: without it, all lag."""
    config = probe.config
    if config is None:
        return {"sie-config": "did not answer"}
    behind: dict[str, str] = {}
    for name, sync in probe.gateways.items():
        if sync is None:
            behind[name] = "did not answer"
        elif not sync.get("bootstrapped"):
            behind[name] = "not bootstrapped"
        elif sync.get("generation") != config.get("generation"):
            behind[name] = f"generation {_short(sync.get('generation'))}"
        elif sync.get("epoch", -1) < floor_epoch:
            behind[name] = f"epoch {sync.get('epoch')} < {floor_epoch}"
        elif probe.gateway_workers.get(name) != dict(expected_workers):
            behind[name] = f"sees workers {probe.gateway_workers.get(name)}"
    for name, status in probe.workers.items():
        if status is None:
            behind[name] = "did not answer"
        elif not status.get("ready"):
            behind[name] = "not ready"
        elif status.get("bundle_config_hash") not in seen_hashes.get(status.get("bundle"), ()):
            seen = _short(status.get("bundle_config_hash"))
            behind[name] = f"hash {seen} not seen since the heal"
    return behind


def caught_up(probe: Probe, floor_epoch: int, seen_hashes: Mapping[str, set[str]],
              expected_workers: Mapping[str, int]) -> bool:
    return not lagging(probe, floor_epoch, seen_hashes, expected_workers)


@dataclass(frozen=True)
class CaughtUp:
    """How long after a heal the cluster caught up, measured two ways from the same probes:
    ``seconds``, when the last node's answer that showed it caught up (and every answer of it
    since) arrived; ``whole_probe``, when the first probe in which all had caught up finished
    (an upper bound that adds up to one probe's duration). ``nodes``: each node's own time;
    ``lag``: the nodes still behind in the probe before, and why."""

    seconds: float
    whole_probe: float
    nodes: dict[str, float]
    lag: dict[str, str]


class CatchUpClock:
    """Per node, since when it has been seen caught up, over the probes of one wait. Pure."""

    def __init__(self, start: float) -> None:
        self.start = start
        self._since: dict[str, float | None] = {}
        self.lag: dict[str, str] = {}

    def observe(self, probe: Probe, behind: Mapping[str, str]) -> CaughtUp | None:
        nodes = [*probe.gateways, *probe.workers]
        for node in nodes:
            if node in behind:
                self._since[node] = None
            elif self._since.get(node) is None:
                self._since[node] = probe.answered.get(node, probe.finished)
        if behind:
            self.lag = dict(behind)
            return None
        times = {node: round(max(0.0, self._since[node] - self.start), 3) for node in nodes}
        return CaughtUp(seconds=max(times.values(), default=0.0),
                        whole_probe=round(probe.finished - self.start, 3), nodes=times,
                        lag=self.lag)


def convergence_problems(probe: Probe, expected_workers: Mapping[str, int]) -> list[str]:
    """Why the cluster is not exactly at sie-config's state; [] when it is."""
    config = probe.config
    if config is None:
        return ["sie-config did not answer"]
    problems = []
    for name, sync in probe.gateways.items():
        if sync is None:
            problems.append(f"{name} did not answer")
            continue
        for key in SYNC_FIELDS:
            if sync.get(key) != config.get(key):
                problems.append(f"{name} {key} {_short(sync.get(key))} != sie-config's "
                                f"{_short(config.get(key))}")
    for name, counts in probe.gateway_workers.items():
        if counts is not None and counts != dict(expected_workers):
            problems.append(f"{name} sees workers {counts}, expected {dict(expected_workers)}")
    hashes = config.get("bundle_config_hashes") or {}
    for name, status in probe.workers.items():
        if status is None:
            problems.append(f"{name} did not answer")
            continue
        bundle = status.get("bundle")
        if not status.get("ready"):
            problems.append(f"{name} is not ready")
        if status.get("bundle_config_hash") != hashes.get(bundle):
            problems.append(f"{name} hash {_short(status.get('bundle_config_hash'))} != "
                            f"sie-config's {_short(hashes.get(bundle))} for bundle {bundle}")
    return problems


def _short(value) -> str:
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)


def published_hashes(answer: Mapping) -> dict[str, set[str]]:
    """The bundle hashes sie-config published, per bundle, in a `/v1/configs/deltas` answer:
    each write's hash of its bundle after it, not only the ones a probe happened to sample."""
    found: dict[str, set[str]] = defaultdict(set)
    deltas = answer.get("deltas")
    for delta in deltas if isinstance(deltas, list) else ():
        bundle = delta.get("bundle_id") if isinstance(delta, Mapping) else None
        value = delta.get("bundle_config_hash") if isinstance(delta, Mapping) else None
        if isinstance(bundle, str) and isinstance(value, str) and value:
            found[bundle].add(value)
    return dict(found)


@dataclass
class Observer:
    targets: Targets
    history: History
    interval: float = 0.2
    timeout: float = 1.0
    token: str | None = None
    latest: Probe | None = None
    _changed: trio.Event = field(default_factory=trio.Event)
    _last_seen: dict[str, tuple] = field(default_factory=dict)
    _http: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.AsyncClient(headers=headers, timeout=self.timeout)

    async def run(self) -> None:
        async with self.client() as http:
            self._http = http
            while True:
                probe = await self.probe(http)
                self._record(probe)
                self.latest = probe
                self._changed.set()
                self._changed = trio.Event()
                await trio.sleep(self.interval)

    async def next_probe(self) -> Probe:
        """The first probe that starts after this call."""
        asked = trio.current_time()
        while self.latest is None or self.latest.started < asked:
            await self._changed.wait()
        return self.latest

    async def probe(self, http: httpx.AsyncClient) -> Probe:
        started = trio.current_time()
        targets = self.targets
        config: list = [None]
        gateways: dict = {name: None for name in targets.gateways}
        gateway_workers: dict = {name: None for name in targets.gateways}
        workers: dict = {name: None for name in targets.workers}

        answered: dict[str, float] = {}

        async def get(url: str, into: dict, key) -> None:
            try:
                response = await http.get(url)
                if response.status_code == 200:
                    into[key] = response.json()
            except (httpx.HTTPError, ValueError):
                pass
            if isinstance(key, str):  # a gateway answers twice: the later arrival counts
                answered[key] = trio.current_time()

        bundles: dict = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(get, targets.config + "/v1/configs/epoch", config, 0)
            for name, url in targets.gateways.items():
                nursery.start_soon(get, url + "/v1/configs/sync", gateways, name)
                nursery.start_soon(get, url + "/v1/configs/bundles", bundles, name)
            for name, (url, _bundle) in targets.workers.items():
                nursery.start_soon(get, url + "/v1/worker/status", workers, name)
        for name, body in bundles.items():
            gateway_workers[name] = {b["bundle_id"]: b.get("connected_workers", 0)
                                     for b in body.get("bundles", [])
                                     if b.get("bundle_id") in self.targets.expected_workers}
        return Probe(started, config[0], gateways, gateway_workers, workers,
                     finished=trio.current_time(), answered=answered)

    def _record(self, probe: Probe) -> None:
        nodes = {"sie-config": probe.config, **probe.gateways}
        for node, body in nodes.items():
            if body is None:
                continue
            seen = (body.get("epoch"), body.get("generation"), body.get("bootstrapped", True))
            if self._last_seen.get(node) != seen:
                self._last_seen[node] = seen
                self.history.record("observe", node=node, epoch=seen[0], generation=seen[1],
                                    bootstrapped=seen[2])

    async def wait_caught_up(self, cap: float) -> CaughtUp | None:
        """How long from now until `caught_up` holds, or None if it did not within `cap`.

        Probes back to back meanwhile (the background loop's pause would blur the figure).
        These probes are not recorded: they overlap the loop's, and the epoch-regression rule
        reads the recorded observations in order."""
        start = trio.current_time()
        clock = CatchUpClock(start)
        floor: int | None = None
        seen: dict[str, set[str]] = defaultdict(set)
        with trio.move_on_after(cap):
            while True:
                assert self._http is not None, "run() first: it opens the client"
                probe = await self.probe(self._http)
                if probe.config is None:
                    continue
                if floor is None:
                    floor = int(probe.config.get("epoch", 0))
                for bundle, value in (probe.config.get("bundle_config_hashes") or {}).items():
                    seen[bundle].add(value)
                for bundle, values in (await self._published_since(
                        floor, probe.config.get("generation"))).items():
                    seen[bundle] |= values
                done = clock.observe(probe, lagging(probe, floor, seen,
                                                    self.targets.expected_workers))
                if done is not None:
                    return done
        return None

    async def _published_since(self, floor: int, generation) -> dict[str, set[str]]:
        """`published_hashes` of sie-config's deltas after ``floor``; none when it cannot say
        (restarted since, another generation, unreachable): the probes' samples remain."""
        if self._http is None or not isinstance(generation, str):
            return {}
        try:
            response = await self._http.get(self.targets.config + "/v1/configs/deltas",
                                            params={"since": floor, "generation": generation})
            return published_hashes(response.json()) if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return {}


async def models_of(http: httpx.AsyncClient, base_url: str) -> dict[str, list[str]] | None:
    """`GET /v1/configs/models` as {model_id: sorted profiles}, or None without an answer."""
    try:
        response = await http.get(base_url + "/v1/configs/models", timeout=30.0)
        if response.status_code != 200:
            return None
        return {m["model_id"]: sorted(m.get("profiles") or [])
                for m in response.json().get("models", [])}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


async def not_acked(http: httpx.AsyncClient, base_url: str, model_ids, *,
                    concurrency: int = 16) -> list[str]:
    """The models whose `/status` on this gateway is not all-acked (models without bundles are
    never acked and are skipped)."""
    pending: list[str] = []
    limiter = trio.CapacityLimiter(concurrency)

    async def check(model_id: str) -> None:
        async with limiter:
            report = await fetch_status_async(http, base_url, model_id, timeout=10.0)
        if not (report.acked or report.no_bundles):
            pending.append(model_id)

    async with trio.open_nursery() as nursery:
        for model_id in model_ids:
            nursery.start_soon(check, model_id)
    return sorted(pending)

"""Real processes on loopback for the scenarios: nats-server, sie-config, gateways, workers.

Every process is a child in its own session; `Fleet` remembers what it started and kills it on
exit, whatever happened. Processes that do not depend on each other are started together and
waited for together.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Sequence

import httpx
import trio
import yaml

from sie_actors.procs import (ManagedProcess, NatsServer, ProcessSpec, ServiceProcess,
                              child_env, free_port, free_port_block)
from sie_actors.seed import default_dir, load_bundles
from sie_actors.procs.polling import wait_for
from sie_cluster.topology import plan_cluster

BUNDLES_DIR = default_dir("bundles")
MODELS_DIR = default_dir("models")

# one adapter module per shipped bundle, so writes can be spread over every bundle
BUNDLE_ADAPTERS = {
    "default": "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter",
    "sglang": "sie_server.adapters.sglang:SGLangAdapter",
    "transformers5": "sie_server.adapters.lighton_ocr:LightOnOcrAdapter",
}


def bundle_names() -> list[str]:
    return [b.name for b in load_bundles(BUNDLES_DIR)]


def model_doc(model_id: str, bundle: str = "default") -> dict:
    """A model document of realistic size (about the shipped catalog's), routed to `bundle`."""
    return {
        "sie_id": model_id,
        "hf_id": model_id,
        "inputs": {"text": True, "image": False, "audio": False, "video": False},
        "tasks": {"encode": {"dense": {"dim": 768}}},
        "max_sequence_length": 512,
        "profiles": {"default": {
            "adapter_path": BUNDLE_ADAPTERS[bundle],
            "max_batch_tokens": 8192,
            "compute_precision": "bfloat16",
            "adapter_options": {"loadtime": {}, "runtime": {"pooling": "mean",
                                                            "normalize": True}},
        }},
    }


def model_yaml(model_id: str, bundle: str = "default") -> bytes:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 10,000 files in ~1 s
    return yaml.dump(model_doc(model_id, bundle), Dumper=dumper, sort_keys=False).encode()


def bundle_for(index: int, bundles: Sequence[str]) -> str:
    """Most models in the general bundle, some in the others (as a real catalog)."""
    return bundles[index % len(bundles)] if index % 5 == 0 else "default"


ORGS = 100


def spread_id(kind: str, index: int) -> str:
    """`orgNN/kind-index`: ids of one kind spread evenly over the sorted catalog, so a write
    lands anywhere in a bundle's hash order (the cost of rehashing depends on where)."""
    org = index % ORGS if kind == "preload" else random.randrange(ORGS)
    return f"org{org:02d}/{kind}-{index:05d}"


def preload_store(store_dir: Path, count: int) -> list[str]:
    """Write `count` models straight into a store in the original's layout (models/*.yaml and
    the epoch), as a store that grew by `count` writes; far faster than `count` POSTs."""
    models = store_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    bundles = bundle_names()
    ids = []
    for i in range(count):
        model_id = spread_id("preload", i)
        (models / f"{model_id.replace('/', '__')}.yaml").write_bytes(
            model_yaml(model_id, bundle_for(i, bundles)))
        ids.append(model_id)
    (store_dir / "epoch").write_text(str(count))
    return ids


def seed_env() -> dict[str, str]:
    return {"SIE_BUNDLES_DIR": str(BUNDLES_DIR), "SIE_MODELS_DIR": str(MODELS_DIR)}


class Fleet:
    """The processes one scenario started; all killed when the scenario ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        if workdir.exists():
            shutil.rmtree(workdir)  # a fresh store and fresh logs for every run
        workdir.mkdir(parents=True)
        self.processes: list[ManagedProcess] = []

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.processes):
            try:
                proc.kill()
            except Exception:
                pass
        self.processes.clear()

    def nats(self, name: str = "nats", port: int | None = None) -> NatsServer:
        server = NatsServer(port=port, log_path=self.workdir / f"{name}.log", name=name)
        self.processes.append(server)
        return server.start()

    def service(self, module: str, name: str, env: dict[str, str],
                args: Sequence[str] = (), port: int | None = None) -> ServiceProcess:
        """Start (do not wait): `python -m module serve --port ...`."""
        proc = ServiceProcess(name, module, list(args), port=port or free_port(), env=env,
                              log_path=self.workdir / f"{name}.log")
        self.processes.append(proc)
        ManagedProcess.start(proc)
        return proc

    def planned(self, spec: ProcessSpec) -> ServiceProcess:
        """Start (do not wait) one service of a `plan_cluster` plan."""
        proc = ServiceProcess.planned(spec, self.workdir / f"{spec.name}.log")
        self.processes.append(proc)
        ManagedProcess.start(proc)
        return proc

    def config(self, name: str, nats_url: str | None, store_dir: Path | None,
               **extra: str) -> ServiceProcess:
        env = child_env(**seed_env(), POD_NAME="sie-config", **extra)
        if nats_url:
            env["SIE_NATS_URL"] = nats_url
        if store_dir is not None:
            env["SIE_CONFIG_STORE_DIR"] = str(store_dir)
            env["SIE_CONFIG_RESTORE"] = "true"
        return self.service("sie_config", name, env)

    def gateway(self, name: str, config_url: str | None, nats_url: str | None,
                workers: Sequence[str] = (), seed: bool = False, **extra: str) -> ServiceProcess:
        env = child_env(POD_NAME=name, **{"SIE_GATEWAY_POLL_INTERVAL_S": "60", **extra})
        if seed:
            env.update(seed_env())
        if config_url:
            env["SIE_CONFIG_SERVICE_URL"] = config_url
        if nats_url:
            env["SIE_NATS_URL"] = nats_url
        if workers:
            env["SIE_GATEWAY_WORKERS"] = ",".join(workers)
        return self.service("sie_gateway", name, env)


def wait_ready(procs: Sequence[ServiceProcess], timeout: float = 60.0,
               path: str = "/readyz") -> None:
    for proc in procs:
        proc.wait_healthy(timeout, path)


async def await_ready(procs: Sequence[ServiceProcess], timeout: float = 60.0,
                      path: str = "/readyz") -> None:
    await trio.to_thread.run_sync(wait_ready, procs, timeout, path)


async def wait_dialled(http: httpx.AsyncClient, readyz: str, workers: int, timeout: float,
                       interval: float = 0.05) -> None:
    """Until the gateway's `/readyz` (URL or path on `http`'s base) counts `workers` healthy
    workers: it has dialled them all."""
    async def dialled() -> bool:
        try:
            r = await http.get(readyz)
            return r.status_code == 200 and r.json().get("healthy_workers") == workers
        except (httpx.HTTPError, ValueError):
            return False
    await wait_for(dialled, timeout, f"{readyz}: {workers} healthy worker(s)", interval)


def client(base_url: str | None = None, timeout: float = 30.0) -> httpx.AsyncClient:
    kwargs = {"timeout": timeout, "limits": httpx.Limits(max_keepalive_connections=64)}
    if base_url:
        kwargs["base_url"] = base_url
    return httpx.AsyncClient(**kwargs)


def now() -> float:
    return time.perf_counter()


class MainCluster:
    """The cluster of `sie-cluster up`, from its own plan (`plan_cluster`): NATS, sie-config
    with a store, one real worker per bundle, gateways that dial every worker. `models` API
    models are in the store at start. Gateways poll the epoch once a minute (the backstop only),
    so the measured propagation is the NATS path's."""

    def __init__(self, workdir: Path, models: int, gateways: int = 2,
                 inference_ports: bool = False) -> None:
        self.fleet = Fleet(workdir)
        self.models = models
        self.gateway_count = gateways
        # each gateway's SIE_GATEWAY_INFERENCE_PORT, when asked for
        self.inference_ports = ([free_port() for _ in range(gateways)] if inference_ports
                                else [])
        self.model_ids: list[str] = []
        self.nats: NatsServer | None = None
        self.config: ServiceProcess | None = None
        self.workers: list[ServiceProcess] = []
        self.gateways: list[ServiceProcess] = []

    def start(self) -> "MainCluster":
        plan = plan_cluster(data_dir=self.fleet.workdir,
                            base_port=free_port_block(10 + len(bundle_names())),
                            nats_port=free_port(), gateways=self.gateway_count,
                            base_env=child_env(), extra_env={"SIE_GATEWAY_POLL_INTERVAL_S": "60"},
                            inference_ports=self.inference_ports)
        self.plan = plan
        self.model_ids = preload_store(plan.store_dir, self.models)
        self.nats = self.fleet.nats(port=plan.nats.port)
        self.config = self.fleet.planned(plan.config)
        wait_ready([self.config])
        self.workers = [self.fleet.planned(spec) for spec in plan.workers]
        self.gateways = [self.fleet.planned(spec) for spec in plan.gateways]
        wait_ready(self.workers + self.gateways)
        return self

    @property
    def inference_urls(self) -> list[str]:
        return [self.plan.inference_url(i) for i in range(len(self.inference_ports))]

    def close(self) -> None:
        self.fleet.close()

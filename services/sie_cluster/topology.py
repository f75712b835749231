"""What `sie-cluster up` runs: a pure description of the processes, their ports and environment.

Kept apart from the supervisor so the topology can be printed, tested and reused by the benchmark
and chaos tools without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sie_actors.procs import LOOPBACK, ProcessSpec, child_env, nats_server_argv, service_argv
from sie_actors.seed import default_dir, load_bundles
from sie_cluster.datadir import STORE_DIR


@dataclass(frozen=True)
class ClusterPlan:
    nats: ProcessSpec
    config: ProcessSpec
    gateways: tuple[ProcessSpec, ...]
    workers: tuple[ProcessSpec, ...]
    data_dir: Path
    inference_ports: tuple[int, ...] = ()   # gateway i's SIE_GATEWAY_INFERENCE_PORT, if any

    def inference_url(self, index: int) -> str | None:
        """Gateway `index`'s inference port URL (the encode route only), or None."""
        if index >= len(self.inference_ports):
            return None
        return f"http://{LOOPBACK}:{self.inference_ports[index]}"

    @property
    def processes(self) -> tuple[ProcessSpec, ...]:
        """In start order: NATS, sie-config, workers, then the gateways that dial the workers."""
        return (self.nats, self.config, *self.workers, *self.gateways)

    @property
    def store_dir(self) -> Path:
        return self.data_dir / STORE_DIR

    @property
    def nats_url(self) -> str:
        return f"nats://{LOOPBACK}:{self.nats.port}"


def _service(module: str, name: str, port: int, env: dict[str, str],
             extra: tuple[str, ...] = ()) -> ProcessSpec:
    return ProcessSpec(name, service_argv(module, port, extra), env, port, "/readyz")


def plan_cluster(*, data_dir: Path, base_port: int = 8080, nats_port: int = 4222,
                 gateways: int = 2, workers_per_bundle: int = 1,
                 bundles_dir: Path | None = None, models_dir: Path | None = None,
                 admin_token: str | None = None, extra_env: dict[str, str] | None = None,
                 base_env: dict[str, str] | None = None,
                 inference_ports: Sequence[int] = ()) -> ClusterPlan:
    """`inference_ports`: one per gateway, each gateway's `SIE_GATEWAY_INFERENCE_PORT`; none:
    the gateways serve encodes on their main port only."""
    if inference_ports and len(inference_ports) != gateways:
        raise ValueError(f"{len(inference_ports)} inference ports for {gateways} gateways")
    bundles_dir = (bundles_dir or default_dir("bundles")).resolve()
    models_dir = (models_dir or default_dir("models")).resolve()
    env = child_env(base_env, keep_tuning=True, **(extra_env or {}))
    if admin_token:
        env["SIE_ADMIN_TOKEN"] = admin_token
    nats_url = f"nats://{LOOPBACK}:{nats_port}"
    nats = ProcessSpec("nats", tuple(nats_server_argv(nats_port, data_dir / "nats-js")),
                       env, nats_port, None)
    seed = dict(SIE_BUNDLES_DIR=str(bundles_dir), SIE_MODELS_DIR=str(models_dir))
    config = _service("sie_config", "sie-config", base_port,
                      dict(env, **seed, SIE_NATS_URL=nats_url,
                           SIE_CONFIG_STORE_DIR=str(data_dir / STORE_DIR),
                           SIE_CONFIG_RESTORE="true", POD_NAME="sie-config"))
    port = base_port + 10
    workers = []
    for bundle in load_bundles(bundles_dir):
        for index in range(workers_per_bundle):
            name = f"worker-{bundle.name}-{index}"
            workers.append(_service(
                "sie_worker", name, port,
                dict(env, **seed, SIE_NATS_URL=nats_url, SIE_CONFIG_SERVICE_URL=config.url,
                     SIE_BUNDLE=bundle.name, SIE_POOL=bundle.name, POD_NAME=name,
                     SIE_WORKER_PRELOAD="true"),
                ("--bundle", bundle.name, "--name", name)))
            port += 1
    gateway_env = dict(env, SIE_NATS_URL=nats_url, SIE_CONFIG_SERVICE_URL=config.url,
                       SIE_GATEWAY_WORKERS=",".join(w.url for w in workers),
                       SIE_GATEWAY_PEERS=",".join(f"http://{LOOPBACK}:{base_port + 1 + i}"
                                                  for i in range(gateways)))
    gateway_specs = tuple(
        _service("sie_gateway", f"gateway-{i}", base_port + 1 + i,
                 dict(gateway_env, POD_NAME=f"gateway-{i}",
                      **({"SIE_GATEWAY_INFERENCE_PORT": str(inference_ports[i])}
                         if inference_ports else {})))
        for i in range(gateways))
    return ClusterPlan(nats, config, gateway_specs, tuple(workers), data_dir,
                       tuple(inference_ports))

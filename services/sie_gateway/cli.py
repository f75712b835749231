"""`sie-gateway serve|version`: the command line of a read-side replica."""

from __future__ import annotations

import argparse
import sys

import trio

from sie_actors.http.app import install_signal_shutdown
from sie_actors.logs import configure_logging

from sie_gateway.main import run_service
from sie_gateway.settings import GatewaySettings

VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a gateway replica")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", "-p", type=int, default=8080)
    serve.add_argument("--worker", "-w", action="append", default=[],
                       help="worker base URL (repeatable; also SIE_GATEWAY_WORKERS, comma-separated)")
    serve.add_argument("--log-level", "-l", default=None)
    serve.add_argument("--json-logs", action="store_true", default=None)
    sub.add_parser("version", help="print the version")
    return parser


async def _serve(settings: GatewaySettings) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        install_signal_shutdown(nursery, shutdown)
        await run_service(settings, shutdown)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"sie-gateway {VERSION}")
        return 0
    configure_logging(args.log_level, args.json_logs)
    settings = GatewaySettings.from_env(workers=args.worker, host=args.host, port=args.port)
    trio.run(_serve, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`sie-config serve|version`: the command line of the writer service."""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from sie_actors.http.app import install_signal_shutdown
from sie_actors.logs import configure_logging
from sie_actors.store import StoreUnavailable

from sie_config.main import run_service
from sie_config.settings import ConfigSettings

VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-config", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the config service")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", "-p", type=int, default=8080)
    serve.add_argument("--log-level", "-l", default=None,
                       help="debug|info|warning|error (env SIE_LOG_LEVEL, default info)")
    serve.add_argument("--json-logs", action="store_true", default=None,
                       help="JSON log lines (env SIE_LOG_JSON)")
    sub.add_parser("version", help="print the version")
    return parser


async def _serve(settings: ConfigSettings) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        install_signal_shutdown(nursery, shutdown)
        await run_service(settings, shutdown)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"sie-config {VERSION}")
        return 0
    configure_logging(args.log_level, args.json_logs)
    settings = ConfigSettings.from_env(host=args.host, port=args.port)
    failed = False
    try:
        trio.run(_serve, settings)
    except* StoreUnavailable as group:
        # Without its store sie-config cannot know its epoch: refuse to start, clearly.
        for exc in group.exceptions:
            logging.getLogger("sie_config").error("cannot start: config store unavailable: %s",
                                                  exc)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

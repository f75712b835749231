"""`sie-worker serve|version`: a worker of one bundle, without models (the control-plane half).

    sie-worker serve --host 0.0.0.0 --port 8080 --bundle default [--name N] [--pool P]

An unknown bundle, or an invalid setting, stops it at once with a message and exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from sie_actors.http.app import install_signal_shutdown
from sie_actors.logs import configure_logging

from sie_worker.catalog import WorkerCatalog, load_catalog
from sie_worker.main import run_service
from sie_worker.settings import WorkerSettings
from sie_worker.view import VERSION

log = logging.getLogger("sie_worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sie-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the worker")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", "-p", type=int, default=8080)
    serve.add_argument("--bundle", "-b", default=None,
                       help="bundle to serve (env SIE_BUNDLE, default 'default')")
    serve.add_argument("--name", default=None,
                       help="worker name (default POD_NAME, else HOSTNAME, else the host name)")
    serve.add_argument("--pool", default=None, help="pool name reported to gateways (SIE_POOL)")
    serve.add_argument("--log-level", "-l", default=None,
                       help="debug|info|warning|error (env SIE_LOG_LEVEL, default info)")
    serve.add_argument("--json-logs", action="store_true", default=None,
                       help="JSON log lines (env SIE_LOG_JSON)")
    sub.add_parser("version", help="print the version")
    return parser


async def _serve(settings: WorkerSettings, catalog: WorkerCatalog) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        install_signal_shutdown(nursery, shutdown)
        await run_service(settings, shutdown, catalog=catalog)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"sie-worker {VERSION}")
        return 0
    configure_logging(args.log_level, args.json_logs)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    settings = WorkerSettings.from_env(host=args.host, port=args.port, bundle=args.bundle,
                                       name=args.name, pool=args.pool)
    catalog = load_catalog(settings.bundles_dir, settings.models_dir, settings.bundle)
    trio.run(_serve, settings, catalog)
    log.info("sie-worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

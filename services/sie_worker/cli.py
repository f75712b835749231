"""`sie-worker serve|version`: a worker of one bundle, without models (the control-plane half).

    sie-worker serve --host 0.0.0.0 --port 8080 --bundle default [--name N] [--pool P]

An unknown bundle, or an invalid setting, stops it at once with a message and exit code 1.
"""

from __future__ import annotations

import logging
import sys
from functools import partial

from sie_actors.logs import configure_logging
from sie_actors.service_cli import run_until_signalled, service_parser

from sie_worker.catalog import load_catalog
from sie_worker.main import run_service
from sie_worker.settings import WorkerSettings
from sie_worker.view import VERSION

log = logging.getLogger("sie_worker")


def main(argv: list[str] | None = None) -> int:
    parser, serve = service_parser("sie-worker", __doc__)
    serve.add_argument("--bundle", "-b", default=None,
                       help="bundle to serve (env SIE_BUNDLE, default 'default')")
    serve.add_argument("--name", default=None,
                       help="worker name (default POD_NAME, else HOSTNAME, else the host name)")
    serve.add_argument("--pool", default=None, help="pool name reported to gateways (SIE_POOL)")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"sie-worker {VERSION}")
        return 0
    configure_logging(args.log_level, args.json_logs)
    settings = WorkerSettings.from_env(host=args.host, port=args.port, bundle=args.bundle,
                                       name=args.name, pool=args.pool)
    catalog = load_catalog(settings.bundles_dir, settings.models_dir, settings.bundle)
    run_until_signalled(partial(run_service, settings, catalog=catalog))
    log.info("sie-worker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

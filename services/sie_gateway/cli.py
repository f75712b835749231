"""`sie-gateway serve|version`: the command line of a read-side replica."""

from __future__ import annotations

import sys
from functools import partial

from sie_actors.logs import configure_logging
from sie_actors.service_cli import run_until_signalled, service_parser

from sie_gateway.main import run_service
from sie_gateway.settings import GatewaySettings

VERSION = "0.1.0"


def main(argv: list[str] | None = None) -> int:
    parser, serve = service_parser("sie-gateway", __doc__)
    serve.add_argument("--worker", "-w", action="append", default=[],
                       help="worker base URL (repeatable; also SIE_GATEWAY_WORKERS, "
                            "comma-separated)")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"sie-gateway {VERSION}")
        return 0
    configure_logging(args.log_level, args.json_logs)
    settings = GatewaySettings.from_env(workers=args.worker, host=args.host, port=args.port)
    run_until_signalled(partial(run_service, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`sie-config serve|version`: the command line of the writer service."""

from __future__ import annotations

import logging
import sys
from functools import partial

from sie_actors.logs import configure_logging
from sie_actors.service_cli import run_until_signalled, service_parser
from sie_actors.store import StoreUnavailable

from sie_config.main import run_service
from sie_config.settings import ConfigSettings

VERSION = "0.1.0"


def main(argv: list[str] | None = None) -> int:
    parser, _serve = service_parser("sie-config", __doc__)
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"sie-config {VERSION}")
        return 0
    configure_logging(args.log_level, args.json_logs)
    settings = ConfigSettings.from_env(host=args.host, port=args.port)
    failed = False
    try:
        run_until_signalled(partial(run_service, settings))
    except* StoreUnavailable as group:
        # Without its store sie-config cannot know its epoch: refuse to start, clearly.
        for exc in group.exceptions:
            logging.getLogger("sie_config").error("cannot start: config store unavailable: %s",
                                                  exc)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

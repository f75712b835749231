"""The command-line shell every service shares: `serve` / `version`, logging and signals.

Each service adds its own flags to the `serve` parser and passes its `run_service`; SIGTERM and
SIGINT set the shutdown event (a graceful stop: hypercorn finishes in-flight requests, then the
actor tree is cancelled) instead of raising KeyboardInterrupt somewhere random.
"""

from __future__ import annotations

import argparse
import signal
from typing import Awaitable, Callable

import trio



def service_parser(prog: str, description: str | None) -> tuple[argparse.ArgumentParser,
                                                                   argparse.ArgumentParser]:
    """(the top parser, its `serve` sub-parser) with the options every service has."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help=f"run {prog}")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", "-p", type=int, default=8080)
    serve.add_argument("--log-level", "-l", default=None,
                       help="debug|info|warning|error (env SIE_LOG_LEVEL, default info)")
    serve.add_argument("--json-logs", action="store_true", default=None,
                       help="JSON log lines (env SIE_LOG_JSON)")
    sub.add_parser("version", help="print the version")
    return parser, serve


def install_signal_shutdown(nursery: trio.Nursery, shutdown: trio.Event) -> None:
    """SIGTERM/SIGINT set `shutdown` (a graceful stop) instead of raising KeyboardInterrupt."""

    async def watch() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                shutdown.set()
                return

    nursery.start_soon(watch)


def run_until_signalled(run: Callable[[trio.Event], Awaitable[None]]) -> None:
    """`trio.run` a service's `run(shutdown)` until it returns after SIGTERM/SIGINT."""
    async def main() -> None:
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            install_signal_shutdown(nursery, shutdown)
            await run(shutdown)
            nursery.cancel_scope.cancel()

    trio.run(main)

"""The HTTP server's floor: a bare ASGI callable on hypercorn-trio that answers every request
with fixed bytes (a POST's body is read first, as our routes read it). Measured in the same run
as sie-config's cached reads or the gateway's one-item encodes, it says how much of a request's
cost is ours and how much is the HTTP server's, independent of how fast the machine is that day.

`python -m sie_bench.baseline serve --host H --port P --body FILE` (the same command-line shape
as our services, so the bench starts it like one).
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve


def fixed_body_app(body: bytes):
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "POST":
            while (await receive()).get("more_body", False):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sie_bench.baseline")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file whose bytes every answer carries")
    args = parser.parse_args(argv)
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.errorlog = None
    trio.run(partial(serve, fixed_body_app(args.body.read_bytes()), config))


if __name__ == "__main__":
    main()

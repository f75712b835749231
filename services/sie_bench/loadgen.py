"""A closed-loop HTTP/1.1 load generator: N kept-alive connections, one request in flight each.

Run as its own process (`python -m sie_bench.loadgen ...`) so it does not share a core's time
slices with the benchmark's driver, and light enough not to be the bottleneck: raw sockets on
trio, requests pre-encoded, responses framed by Content-Length only (no header parsing beyond
that), no per-request allocation beyond the receive buffer. It reports its own CPU use (from
/proc/self/stat), so a reader can check it had headroom while the server was saturated.

Prints one JSON object: per round, completed requests, non-200 count, seconds, and latency
percentiles in ms; plus the generator's CPU share over the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from urllib.parse import urlsplit

import trio

from sie_bench.procfs import cpu_seconds
from sie_bench.stats import summarize


class Counters:
    def __init__(self) -> None:
        self.done = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.recording = False
        self.reconnects = 0


async def connection(host: str, port: int, requests: list[bytes], counters: Counters,
                     offset: int) -> None:
    """One client connection, re-opened whenever the server closes it (hypercorn closes a
    kept-alive connection after `keep_alive_max_requests`, 1,000 by default, with
    `Connection: close` on the last answer), as a real client would."""
    index = offset
    perf = time.perf_counter
    while True:
        stream = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        try:
            while True:
                request = requests[index % len(requests)]
                index += 1
                started = perf()
                await stream.send_all(request)
                while True:  # the head
                    end = buffer.find(b"\r\n\r\n")
                    if end >= 0:
                        break
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection mid-request")
                    buffer += chunk
                head = bytes(buffer[:end]).lower()
                status = int(head[9:12])
                marker = head.find(b"content-length:")
                length = int(head[marker + 15:head.find(b"\r\n", marker)]) if marker >= 0 else 0
                total = end + 4 + length
                while len(buffer) < total:
                    chunk = await stream.receive_some(max(65536, total - len(buffer)))
                    if not chunk:
                        raise ConnectionError("server closed the connection mid-response")
                    buffer += chunk
                del buffer[:total]
                if counters.recording:
                    counters.done += 1
                    if status != 200:
                        counters.errors += 1
                    counters.latencies.append(perf() - started)
                if b"connection: close" in head:
                    counters.reconnects += 1
                    break
        finally:
            await stream.aclose()


async def run(url: str, paths: list[str], connections: int, rounds: int, seconds: float,
              warmup: float) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in paths]
    counters = Counters()
    results = []
    async with trio.open_nursery() as nursery:
        for i in range(connections):
            nursery.start_soon(connection, host, port, requests, counters, i)
        await trio.sleep(warmup)
        cpu0, wall0 = cpu_seconds(os.getpid()), time.monotonic()
        for _ in range(rounds):
            counters.done, counters.errors, counters.latencies = 0, 0, []
            counters.recording = True
            started = time.monotonic()
            await trio.sleep(seconds)
            counters.recording = False
            elapsed = time.monotonic() - started
            lat = summarize([x * 1000 for x in counters.latencies]) if counters.latencies else {}
            results.append({"requests": counters.done, "errors": counters.errors,
                            "seconds": elapsed, "rps": counters.done / elapsed,
                            "latency_ms": lat})
        cpu = (cpu_seconds(os.getpid()) - cpu0) / (time.monotonic() - wall0)
        nursery.cancel_scope.cancel()
    return {"rounds": results, "cpu_share": cpu, "reconnects": counters.reconnects}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sie_bench.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", action="append", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args(argv)
    result = trio.run(run, args.url, args.path, args.connections, args.rounds, args.seconds,
                      args.warmup)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

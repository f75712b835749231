"""Polls every gateway replica's `/status` for one model, once or until all are acked.

Replicas are asked concurrently (one thread each; the CLI is sync and httpx's sync client is
thread-safe per client) so that one slow or dead replica delays a round by at most one request
timeout instead of stalling the others. Clock and sleep are injectable so the loop is testable
without real waiting.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import httpx

from sie_tools.admin.errors import Unreachable
from sie_tools.admin.http import Endpoint, describe_transport_error, model_path
from sie_tools.admin.readiness import UNREACHABLE, ReplicaReport, all_acked, report_of

MIN_REQUEST_TIMEOUT = 0.2


def fetch_status(endpoint: Endpoint, model_id: str, timeout: float) -> ReplicaReport:
    """One replica's answer; every failure becomes a not-acked report with its reason."""
    try:
        response = endpoint.send("GET", model_path(model_id, "/status"), timeout=timeout)
    except Unreachable as exc:
        return ReplicaReport(endpoint.url, error=f"unreachable: {exc.reason}", kind=UNREACHABLE)
    return report_of(endpoint.url, response.status_code, response.content,
                     response.reason_phrase)


async def fetch_status_async(http: httpx.AsyncClient, gateway: str, model_id: str,
                             timeout: float) -> ReplicaReport:
    """`fetch_status` for trio tools that hold their own `httpx.AsyncClient` (sie-chaos)."""
    url = gateway.rstrip("/")
    try:
        response = await http.get(url + model_path(model_id, "/status"), timeout=timeout)
    except httpx.HTTPError as exc:
        kind = UNREACHABLE if isinstance(exc, httpx.TransportError) else None
        return ReplicaReport(url, error=f"unreachable: {describe_transport_error(exc, timeout)}",
                             kind=kind)
    return report_of(url, response.status_code, response.content, response.reason_phrase)


@dataclass
class WaitResult:
    reports: list[ReplicaReport]
    elapsed: float
    acked: bool
    timed_out: bool
    gave_up: bool = False  # `give_up` said polling could not succeed (e.g. no such model)


class Fleet:
    """The configured gateway replicas, polled together."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.endpoints = endpoints
        self._pool = ThreadPoolExecutor(max_workers=max(len(endpoints), 1),
                                        thread_name_prefix="sie-status")

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        for endpoint in self.endpoints:
            endpoint.close()

    def poll(self, model_id: str, timeout: float) -> list[ReplicaReport]:
        """One round, in the configured replica order."""
        futures = [self._pool.submit(fetch_status, e, model_id, timeout) for e in self.endpoints]
        return [f.result() for f in futures]

    def wait(self, model_id: str, *, timeout: float | None, interval: float,
             request_timeout: float, show: Callable[[list[ReplicaReport], float], None],
             give_up: Callable[[list[ReplicaReport]], bool] | None = None,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> WaitResult:
        """Poll until every replica is acked, `give_up(reports)` is true, or `timeout` passes
        (`None`: a single round).

        Each request is bounded by the request timeout and by the time left, so the whole wait
        overshoots `timeout` by at most `MIN_REQUEST_TIMEOUT`.
        """
        start = clock()
        while True:
            remaining = None if timeout is None else timeout - (clock() - start)
            limit = request_timeout if remaining is None else \
                max(min(request_timeout, remaining), MIN_REQUEST_TIMEOUT)
            reports = self.poll(model_id, limit)
            elapsed = clock() - start
            if give_up is not None and not all_acked(reports) and give_up(reports):
                # said once by the caller; a progress line would only repeat it
                return WaitResult(reports, elapsed, acked=False, timed_out=False, gave_up=True)
            show(reports, elapsed)
            if all_acked(reports):
                return WaitResult(reports, elapsed, acked=True, timed_out=False)
            if timeout is None:
                return WaitResult(reports, elapsed, acked=False, timed_out=False)
            left = timeout - elapsed
            if left <= 0:
                return WaitResult(reports, elapsed, acked=False, timed_out=True)
            sleep(min(interval, left))

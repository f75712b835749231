"""Prometheus metrics per service instance.

Each service builds its own `CollectorRegistry` rather than using prometheus-client's global one,
so several apps can live in one test process without "duplicated timeseries" errors, while a real
service process still exports the usual process/GC/platform collectors.

Request labels are bounded whatever clients send: `path` is the route *template* (every path
no route matches shares `<unmatched>`), `method` is one of the HTTP methods or `OTHER`. A raw
path or method as a label value would let anyone grow `/metrics` (and the process) without
bound with a stream of 404s, authenticated or not.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from prometheus_client import gc_collector, platform_collector, process_collector

UNMATCHED_PATH = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServiceMetrics:
    """The HTTP metrics every service has, under the service's prefix, plus room for its own."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self.http_requests = Counter(f"{prefix}_http_requests_total", "HTTP requests",
                                     ["method", "path", "status"], registry=self.registry)
        self.http_duration = Histogram(f"{prefix}_http_request_duration_seconds",
                                       "HTTP request duration", ["method", "path"],
                                       buckets=HTTP_BUCKETS, registry=self.registry)
        self.actor_restarts = self.counter("actor_restarts", "Actor restarts by the service's "
                                           "supervisor", ("actor",))

        self._refiners: dict[str, Callable[[str], str]] = {}

    def refine_route(self, rule: str, label_of: Callable[[str], str]) -> None:
        """Let one route template report some of its paths under another (fixed) label.

        `label_of(path)` must return one of a fixed few labels: e.g. the gateway's
        `/v1/configs/models/<path:model_path>` answers both a model and its `/status`, which an
        operator wants to tell apart.
        """
        self._refiners[rule] = label_of

    def path_label(self, rule: str | None, path: str) -> str:
        """The `path` label of a request: its route template, or `<unmatched>`."""
        if rule is None:
            return UNMATCHED_PATH
        refine = self._refiners.get(rule)
        return refine(path) if refine is not None else rule

    @staticmethod
    def method_label(method: str) -> str:
        return method if method in KNOWN_METHODS else OTHER_METHOD

    def observe_request(self, method: str, rule: str | None, path: str, status: int,
                        seconds: float | None) -> None:
        """Count one answered request under bounded labels (see the module docstring)."""
        method = self.method_label(method)
        label = self.path_label(rule, path)
        self.http_requests.labels(method, label, str(status)).inc()
        if seconds is not None:
            self.http_duration.labels(method, label).observe(seconds)

    def count_restart(self, child: str, exc: BaseException | None) -> None:
        """A ``Supervisor``'s ``on_restart``: every service counts its restarts the same way."""
        self.actor_restarts.labels(child).inc()

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

"""Prometheus metrics per service instance.

Each service builds its own `CollectorRegistry` rather than using prometheus-client's global one,
so several apps can live in one test process without "duplicated timeseries" errors, while a real
service process still exports the usual process/GC/platform collectors.
"""

from __future__ import annotations

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from prometheus_client import gc_collector, platform_collector, process_collector

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

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

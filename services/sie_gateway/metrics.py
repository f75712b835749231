"""sie-gateway's metrics: the original's config-plane names plus resyncs by cause and per-bundle
acked/pending worker counts (refreshed at scrape time from the live views)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import Histogram

from sie_actors.http.metrics import ServiceMetrics


class GatewayMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("sie_gateway")
        self.epoch = self.gauge("config_epoch", "Highest config epoch applied on this gateway")
        self.bootstrap_failures = self.counter("config_bootstrap_failures",
                                               "Failed bootstraps/resyncs from sie-config")
        self.bootstrap_degraded = self.gauge("config_bootstrap_degraded",
                                             "1 until the first bootstrap from sie-config succeeded")
        self.deltas = self.counter("config_deltas", "Config deltas by kind and result",
                                   ("kind", "result"))
        self.resyncs = self.counter("config_resyncs", "Full resyncs from sie-config by cause",
                                    ("cause",))
        self.snapshots = self.counter(
            "config_snapshots", "Snapshots installed from sie-config, by path: catchup (the "
            "deltas since our epoch, applied and checked) or full (the export)", ("path",))
        self.poll_failures = self.counter("config_epoch_poll_failures", "Failed epoch polls")
        self.nats_connected = self.gauge("nats_connected", "1 while connected to NATS")
        self.models = self.gauge("config_models", "Models in this gateway's registry")
        self.workers = self.gauge("workers", "Known workers by health", ("status",))
        self.bundle_acked = self.gauge(
            "bundle_acked_workers", "Healthy workers of the bundle reporting the "
            "bundle_config_hash this gateway expects (for a bundle with no models: \"\")",
            ("bundle",))
        self.bundle_pending = self.gauge(
            "bundle_pending_workers", "Healthy workers of the bundle reporting another "
            "bundle_config_hash than this gateway expects (0 once all caught up; a bundle with "
            "no models has nothing to catch up on)", ("bundle",))
        self.encode_latency = self.histogram(
            "encode_latency_seconds", "End-to-end time of a 200 encode, by model", ("model",))
        self.encode_queue_wait = self.histogram(
            "encode_queue_wait_seconds", "Longest queue wait of a request's items, by model",
            ("model",))
        self.encode_items = self.histogram(
            "encode_batch_items", "Items per encode request, by model", ("model",),
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.encode_timeouts = self.counter(
            "encode_timeouts", "Encodes answered 503 MODEL_LOADING after the timeout", ("model",))
        self.encode_late_results = self.counter(
            "encode_late_results", "Work results dropped at the inbox: for no waiting request "
            "(late, after a timeout), a duplicate, or not a work result")
        self.refreshers: list[Callable[[], None]] = []

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = (), **kwargs) -> Histogram:
        return Histogram(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry,
                         **kwargs)

    def on_state(self, state) -> None:
        self.epoch.set(state.position.epoch)
        self.models.set(len(state.registry))  # O(1); list_models() builds a sorted tuple
        self.bootstrap_degraded.set(0 if state.bootstrapped else 1)

    def render(self) -> tuple[bytes, str]:
        for refresh in self.refreshers:
            refresh()
        return super().render()

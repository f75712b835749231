"""sie-worker's metrics (prefix ``sie_worker``): what an operator alerts on.

Failures show up here rather than as crashes: deltas refused by cause, resyncs by cause,
bootstrap failures by reason, and a counter of snapshots whose hash we could not reproduce.
"""

from __future__ import annotations

from prometheus_client import Histogram

from sie_actors.http.metrics import ServiceMetrics

from sie_worker.view import WorkerView


class WorkerMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("sie_worker")
        self.epoch = self.gauge("epoch", "Config epoch this worker has applied")
        self.ready = self.gauge("ready", "1 when the worker reports ready")
        self.models = self.gauge("models", "Models of this worker's bundle in its registry")
        self.bundle_config_hash = self.gauge(
            "bundle_config_hash_info", "The bundle_config_hash this worker reports (value 1)",
            ("bundle", "hash"))
        self.nats_connected = self.gauge("nats_connected", "1 while connected to NATS")
        self.deltas = self.counter("deltas", "Config deltas received, by result", ("result",))
        self.resyncs = self.counter("resyncs", "Resyncs from sie-config, by cause", ("cause",))
        self.bootstraps = self.counter("bootstraps", "Snapshots installed from sie-config")
        self.snapshots = self.counter(
            "snapshots", "Snapshots installed from sie-config, by path: catchup (the deltas "
            "since our epoch, applied and checked) or full (the bundle export)", ("path",))
        self.bootstrap_failures = self.counter(
            "bootstrap_failures", "Failed snapshot fetches from sie-config, by reason",
            ("reason",))
        self.snapshot_hash_mismatches = self.counter(
            "snapshot_hash_mismatches",
            "Snapshots whose bundle_config_hash this worker computed differently")
        self.epoch_polls = self.counter("epoch_polls", "Epoch checks against sie-config",
                                        ("trigger", "result"))
        self.announces = self.counter("announces", "Worker announcements on NATS", ("result",))
        self.ws_clients = self.gauge("ws_clients", "Open /ws/status streams")
        self.ws_frames = self.counter("ws_frames", "Status frames sent", ("kind",))
        self.inflight_items = self.gauge("inflight_items", "Work items fetched and not settled")
        self.encode_items = self.counter("encode_items", "Work items settled, by outcome",
                                         ("outcome",))
        self.fast_lane_batches = self.counter(
            "fast_lane_batches", "Fetched batches the fast lane started on their model from "
            "the NATS loop's thread (the others went through trio)")
        self.model_load_seconds = Histogram(
            "sie_worker_model_load_seconds", "Model load time, by model", ["model"],
            registry=self.registry, buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))
        self.model_load_failures = self.counter("model_load_failures",
                                                "Failed model loads, by model", ("model",))
        self._hash_labels: tuple[str, str] | None = None

    def on_view(self, view: WorkerView) -> None:
        self.epoch.set(view.epoch)
        self.ready.set(1 if view.ready else 0)
        self.models.set(len(view.models))
        labels = (view.identity.bundle, view.bundle_config_hash)
        if labels != self._hash_labels:
            if self._hash_labels is not None:
                self.bundle_config_hash.remove(*self._hash_labels)
            self.bundle_config_hash.labels(*labels).set(1)
            self._hash_labels = labels

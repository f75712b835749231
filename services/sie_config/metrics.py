"""sie-config's metrics, with the original's names (reference §9) plus a few of ours."""

from __future__ import annotations

from sie_actors.http.metrics import ServiceMetrics

from sie_config.delta_log import DeltaLogStats
from sie_config.state import ConfigState


class ConfigMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("sie_config")
        self.epoch = self.gauge("epoch", "Config epoch of the last creating write")
        self.models = self.gauge("models", "Models in the registry, by source", ("source",))
        # The pre-0.2 name: a gauge must not end in _total (Prometheus naming). Kept one
        # release so dashboards can move to sie_config_models; removed after that.
        self.models_total_deprecated = self.gauge(
            "models_total", "DEPRECATED, use sie_config_models; removed in the next release",
            ("source",))
        self.nats_connected = self.gauge("nats_connected", "1 while connected to NATS")
        self.nats_publishes = self.counter("nats_publishes", "Delta publishes by outcome",
                                           ("result",))
        self.store_writes = self.counter("store_writes", "Config store writes",
                                         ("op", "result"))

        self.delta_log_epochs = self.gauge(
            "delta_log_epochs", "Epochs held in the delta log that mirrors catch up from")
        self.delta_log_bytes = self.gauge("delta_log_bytes", "Bytes of deltas in the delta log")
        self.delta_reads = self.counter(
            "delta_reads", "Catch-up reads (GET /v1/configs/deltas) by result: ok, gone (410: "
            "the mirror takes a snapshot), bad_request", ("result",))

    def on_state(self, state: ConfigState, log: DeltaLogStats | None = None) -> None:
        if log is not None:
            self.delta_log_epochs.set(log.epochs)
            self.delta_log_bytes.set(log.bytes)
        self.epoch.set(state.epoch)
        total = len(state.registry)  # O(1); list_models() builds a sorted tuple
        api = len(state.api_models)
        for gauge in (self.models, self.models_total_deprecated):
            gauge.labels("api").set(api)
            gauge.labels("filesystem").set(max(total - api, 0))

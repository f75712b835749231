"""How hard the mirrors lean on sie-config: its export requests (every one is a bootstrap or a
resync of a gateway or a worker) counted over the whole run, per minute and at the worst minute.

sie-config's counters restart at zero when the nemesis kills it, so the meter scrapes its
`/metrics` every `interval` seconds and adds up the increases, taking a drop as a restart.
A resync storm (issue 15: 29,242 exports in a minute after one forged delta) shows here as a
peak far above the run's average.
"""

from __future__ import annotations

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from sie_chaos.history import History

EXPORT_PATHS = {"/v1/configs/export": "full", "/v1/configs/bundles/<bundle_id>/export": "bundle"}
WINDOW = 60.0


def export_counts(metrics_text: str) -> dict[str, float]:
    """sie-config's served export requests by kind ("full", "bundle") from its /metrics text."""
    counts = {kind: 0.0 for kind in EXPORT_PATHS.values()}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "sie_config_http_requests":
            continue
        for sample in family.samples:
            kind = EXPORT_PATHS.get(sample.labels.get("path", ""))
            if kind is not None and sample.name.endswith("_total"):
                counts[kind] += sample.value
    return counts


class ExportMeter:
    def __init__(self, config_url: str, interval: float = 1.0) -> None:
        self.config_url = config_url
        self.interval = interval
        self.totals = {kind: 0.0 for kind in EXPORT_PATHS.values()}
        self._last: dict[str, float] | None = None
        self.samples: list[tuple[float, float]] = []  # (trio time, cumulative exports)
        self.started: float | None = None

    async def run(self) -> None:
        self.started = trio.current_time()
        async with httpx.AsyncClient(timeout=5.0) as http:
            while True:
                await self.scrape(http)
                await trio.sleep(self.interval)

    async def scrape(self, http: httpx.AsyncClient) -> None:
        try:
            response = await http.get(self.config_url + "/metrics")
            if response.status_code != 200:
                return
            now = export_counts(response.text)
        except (httpx.HTTPError, ValueError):
            return  # sie-config is down (a fault): the next scrape catches up
        for kind, value in now.items():
            previous = (self._last or {}).get(kind, 0.0)
            self.totals[kind] += value - previous if value >= previous else value
        self._last = now
        self.samples.append((trio.current_time(), sum(self.totals.values())))

    def summary(self) -> dict:
        if self.started is None or not self.samples:
            return {"total": 0, "per_minute": None, "peak_per_minute": None}
        elapsed = max(1e-9, self.samples[-1][0] - self.started)
        total = sum(self.totals.values())
        peak = 0.0
        for i, (t, cumulative) in enumerate(self.samples):
            earlier = [c for s, c in self.samples[:i + 1] if s >= t - WINDOW]
            peak = max(peak, cumulative - min(earlier))
        return {"total": int(total), "full": int(self.totals["full"]),
                "bundle": int(self.totals["bundle"]), "minutes": round(elapsed / 60, 3),
                "per_minute": round(total / (elapsed / 60), 1),
                "peak_per_minute": int(peak)}


def record(history: History, meter: ExportMeter) -> dict:
    summary = meter.summary()
    history.record("exports", **summary)
    return summary

"""Reading a peer's `/metrics` text: the one place that interprets Prometheus exposition format.

Tools (bench, chaos) and tests read counters such as resyncs by cause from a service's
`/metrics`. prometheus-client ships the parser that matches the writer we use, with label
escaping and `_total`/`_created` suffixes handled; substring and regex matching got those wrong.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when there are none).

    `name` is the sample's full name as exposed (`sie_gateway_config_resyncs_total`), so a
    counter is found by the name an operator greps for."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def sample_sums_by(text: str, name: str, label: str) -> dict[str, float]:
    """The samples called `name`, summed per value of `label` (`{"applied": 3.0, ...}`)."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and label in sample.labels:
                key = sample.labels[label]
                sums[key] = sums.get(key, 0.0) + sample.value
    return sums

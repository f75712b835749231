"""The forged-deltas fault's payloads and the export meter of sie-chaos (issue 15 guard)."""

from __future__ import annotations

import pytest

from sie_actors.domain.delta import ConfigDelta
from sie_actors.domain.errors import ParseError
from sie_chaos.exports import ExportMeter, export_counts
from sie_chaos.forger import FORGED_PREFIX, KINDS, forged_payload


def test_each_kind_lies_the_way_it_says():
    made = {kind: forged_payload(kind, 40, "gen", "default", 7) for kind in KINDS}
    with pytest.raises(ParseError):
        ConfigDelta.from_json(made["malformed_json"])
    deltas = {k: ConfigDelta.from_json(v) for k, v in made.items() if k != "malformed_json"}
    assert all(d.router_id == "sie-config" for d in deltas.values())  # the trusted id
    assert deltas["far_future"].epoch == 10**12 and deltas["far_future"].generation == "gen"
    assert (deltas["next"].epoch, deltas["next"].generation) == (41, "gen")
    assert deltas["next"].model_id.startswith(FORGED_PREFIX)
    assert deltas["wrong_generation"].generation not in ("gen", "")
    assert "!!python/tuple" in deltas["malformed_yaml"].model_config


METRICS = """# TYPE sie_config_http_requests_total counter
sie_config_http_requests_total{method="GET",path="/v1/configs/export",status="200"} %d
sie_config_http_requests_total{method="GET",path="/v1/configs/bundles/<bundle_id>/export",status="200"} %d
sie_config_http_requests_total{method="GET",path="/v1/configs/epoch",status="200"} 500
"""


def test_export_counts_by_kind():
    assert export_counts(METRICS % (3, 5)) == {"full": 3.0, "bundle": 5.0}


class FakeResponse:
    status_code = 200

    def __init__(self, text: str) -> None:
        self.text = text


class FakeHttp:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    async def get(self, url: str) -> FakeResponse:
        return FakeResponse(self.texts.pop(0))


async def test_the_meter_adds_up_across_a_restart_of_sie_config():
    meter = ExportMeter("http://sie-config")
    meter.started = 0.0
    http = FakeHttp([METRICS % (2, 3), METRICS % (4, 6), METRICS % (1, 0)])  # then a restart
    for _ in range(3):
        await meter.scrape(http)
    assert meter.totals == {"full": 5.0, "bundle": 6.0}

"""The NATS delta payload and producer trust."""

from __future__ import annotations

import orjson
import pytest

from sie_actors.domain.delta import (
    ALL_SUBJECT,
    ConfigDelta,
    bundle_subject,
    is_trusted_producer,
    parse_trusted_producers,
)
from sie_actors.domain.errors import ParseError

DELTA = ConfigDelta(
    router_id="sie-config-0",
    bundle_id="default",
    epoch=7,
    bundle_config_hash="ab" * 32,
    model_id="pub/model",
    profiles_added=("default",),
    model_config="sie_id: pub/model\n",
    affected_bundles=("default", "sglang"),
    generation="g-1",
)


def test_wire_key_order_and_compact_json() -> None:
    data = DELTA.to_json_bytes()
    assert list(orjson.loads(data)) == [
        "router_id",
        "bundle_id",
        "epoch",
        "bundle_config_hash",
        "model_id",
        "profiles_added",
        "model_config",
        "affected_bundles",
        "generation",
    ]
    assert b" " not in data.replace(b"sie_id: pub", b"")
    assert data.startswith(b'{"router_id":"sie-config-0","bundle_id":"default","epoch":7,')


def test_round_trip() -> None:
    assert ConfigDelta.from_json(DELTA.to_json_bytes()) == DELTA
    assert ConfigDelta.from_json(DELTA.to_json_bytes().decode()) == DELTA


def test_original_payload_without_generation_and_with_unknown_keys() -> None:
    payload = orjson.loads(DELTA.to_json_bytes())
    del payload["generation"]
    payload["future_key"] = {"x": 1}
    delta = ConfigDelta.from_json(orjson.dumps(payload))
    assert delta.generation == ""
    assert delta.model_id == "pub/model"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[1]",
        b"null",
        b"\xff",
        b'{"router_id": "x"}',
    ],
)
def test_junk_is_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        ConfigDelta.from_json(data)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epoch", "7"),
        ("epoch", True),
        ("epoch", -1),
        ("epoch", 1.5),
        ("router_id", 5),
        ("profiles_added", "default"),
        ("profiles_added", [1]),
        ("affected_bundles", None),
        ("model_config", {"sie_id": "x"}),
        ("generation", 3),
    ],
)
def test_wrong_types_are_a_parse_error(key: str, value: object) -> None:
    payload = orjson.loads(DELTA.to_json_bytes())
    payload[key] = value
    with pytest.raises(ParseError):
        ConfigDelta.from_json(orjson.dumps(payload))


@pytest.mark.parametrize(
    ("router_id", "trusted"),
    [
        ("sie-config", True),
        ("sie-config-0", True),
        ("sie-config-7f9c-abc", True),
        ("sie-configurator", False),
        ("sie-confi", False),
        ("evil-sie-config", False),
        ("", False),
        (None, False),
        (5, False),
    ],
)
def test_default_trusted_producers(router_id: object, trusted: bool) -> None:
    assert is_trusted_producer(router_id) is trusted


def test_custom_trusted_producers() -> None:
    trusted = parse_trusted_producers(" sie-config , backup ,,")
    assert trusted == ("sie-config", "backup")
    assert is_trusted_producer("backup-1", trusted)
    assert not is_trusted_producer("backupx", trusted)
    assert parse_trusted_producers("") == ("sie-config",)
    assert parse_trusted_producers(None) == ("sie-config",)
    assert not is_trusted_producer("anything", ("",))


def test_subjects() -> None:
    assert bundle_subject("default") == "sie.config.models.default"
    assert ALL_SUBJECT == "sie.config.models._all"


def test_the_started_announcement_names_its_producer_and_nothing_else_is_trusted():
    from sie_actors.domain.delta import announcer, is_trusted_producer, started_announcement
    raw = started_announcement("sie-config-0", 12, "g1")
    assert announcer(raw) == "sie-config-0" and is_trusted_producer(announcer(raw))
    assert announcer(b'{"router_id": "intruder"}') == "intruder"
    assert not is_trusted_producer(announcer(b'{"router_id": "intruder"}'))
    for junk in (b"", b"not json", b"[1]", b'{"router_id": 5}'):
        assert announcer(junk) is None and not is_trusted_producer(announcer(junk))

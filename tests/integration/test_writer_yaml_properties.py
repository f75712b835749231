"""Property (issue 15's guard): whatever YAML a client sends, the real writer either refuses it
with a 4xx and persists nothing, or acknowledges it and a restart with restore gives back the
same models, epoch and hashes. Generated documents carry tags, anchors and aliases, odd scalars
and nesting, in the places that matter (top level, a profile's hashed fields, the id).

The writer here is the real WriterActor on a real local store in a temporary directory, and the
restart is sie-config's own start-up path (`initial_state` with restore); only HTTP is left out,
which tests/integration/test_hostile_http.py covers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sie_actors.store import ConfigStore
from sie_config.idempotency import WriterMemory
from sie_config.main import initial_state
from sie_config.settings import ConfigSettings
from sie_config.writer import StateCell, WriteModel, WriterActor
from tests.conftest import base_env

ST = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter"

ODD_SCALARS = [
    "~", "null", "Null", "yes", "No", "on", "OFF", "y", "0x1F", "0o17", "017", "0b101", "1_000",
    "1:20", "190:20:30.15", ".inf", "-.Inf", ".NaN", "1e3", "1.5e400", "-0.0", "+12",
    "12345678901234567890123", "9223372036854775808", "2024-05-01", "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10", "'quoted'", '"esc \\u00e9 \\x00 \\t"', "''", '""', "-", "=",
    "!!str 12", '!!int "12"', "!!float 1", "!!bool yes", '!!null ""', "!!binary aGk=",
    "!!timestamp 2024-01-01", "!!timestamp 99999-01-01", "!local x", "!!python/none ''",
    "!!str", "!", "plain words", "a: b",
]
SEQUENCE_TAGS = ["!!omap ", "!!pairs ", "!!set ", "!!seq ", "!!python/tuple "]
MAPPING_TAGS = ["!!map ", "!!set ", "!!omap ", "!!python/dict "]


@st.composite
def scalars(draw) -> str:
    """Mostly ordinary scalars, often an odd one: most documents then carry one oddity."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(ODD_SCALARS))
    return draw(st.one_of(st.integers(-2**70, 2**70).map(str),
                          st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True)))


def tagged(draw, tags: list[str]) -> str:
    return draw(st.sampled_from(tags)) if draw(st.integers(0, 4)) == 0 else ""


@st.composite
def flow_values(draw, depth: int = 0) -> str:
    """A YAML flow value as text, with an optional anchor or an alias to an earlier one."""
    anchors: list[str] = draw(st.shared(st.builds(list), key="anchors"))
    if anchors and draw(st.integers(0, 9)) == 0:
        return "*" + draw(st.sampled_from(anchors))
    kind = draw(st.integers(0, 4 if depth < 2 else 1))
    keys = st.lists(st.one_of(st.sampled_from(ODD_SCALARS[:30]),
                              st.from_regex(r"[a-z]{1,6}", fullmatch=True)),
                    max_size=3, unique=True)
    if kind <= 1:
        text = draw(scalars())
    elif kind == 2:
        items = draw(st.lists(flow_values(depth + 1), max_size=3))
        text = tagged(draw, SEQUENCE_TAGS) + "[" + ", ".join(items) + "]"
    elif kind == 3:  # ordered pairs: what !!omap and !!pairs expect
        pairs = [f"{k}: {draw(flow_values(depth + 1))}" for k in draw(keys)]
        text = draw(st.sampled_from(["!!omap ", "!!pairs ", ""])) + "[" + ", ".join(pairs) + "]"
    else:
        pairs = [f"{k}: {draw(flow_values(depth + 1))}" for k in draw(keys)]
        text = tagged(draw, MAPPING_TAGS) + "{" + ", ".join(pairs) + "}"
    if draw(st.integers(0, 6)) == 0:
        name = f"a{len(anchors)}"
        anchors.append(name)
        text = f"&{name} {text}"
    return text


@st.composite
def documents(draw) -> str:
    model_id = draw(st.one_of(st.just("prop/model"), st.just("Prop/Model"), flow_values()))
    top = draw(flow_values())
    tokens = draw(st.one_of(st.just("512"), flow_values()))
    options = draw(flow_values())
    lines = [f"sie_id: {model_id}", f"extra: {top}", "profiles:", "  default:",
             f"    adapter_path: {ST}", f"    max_batch_tokens: {tokens}",
             f"    adapter_options: {{runtime: {options}}}"]
    return "\n".join(lines) + "\n"


def settings_for(store_dir: Path) -> ConfigSettings:
    env = base_env(SIE_CONFIG_STORE_DIR=str(store_dir), SIE_CONFIG_RESTORE="true")
    return ConfigSettings.from_env(env, host="127.0.0.1", port=0)


def served(state) -> tuple:
    """What clients can observe of a state: models, epoch, hashes."""
    models = {entry.model_id: orjson.dumps(entry.config) for entry in state.registry.list_models()}
    return models, state.epoch, state.registry.bundle_config_hashes()


async def write_once(store: ConfigStore, state, body: bytes):
    cell = StateCell(state)
    writer = WriterActor(cell, WriterMemory(), store=store, router_id="sie-config")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        outcome = await writer.ref.ask(WriteModel(body))
        nursery.cancel_scope.cancel()
    return outcome, cell.current


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents())
def test_every_write_is_refused_cleanly_or_survives_a_restart(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(tmp) / "store"
        store = ConfigStore.open(str(store_dir))
        settings_ = settings_for(store_dir)
        before = initial_state(settings_, store)
        outcome, after = trio.run(write_once, store, before, text.encode())
        assert outcome.status < 500, (outcome.status, outcome.body, text)
        event(f"status {outcome.status}")
        if not outcome.ok:
            assert 400 <= outcome.status < 500
            assert orjson.loads(outcome.body)["detail"]["error"]
            assert store.list_model_ids() == [] and store.read_epoch() == 0, text
            assert served(after) == served(before)
            return
        restarted = initial_state(settings_, ConfigStore.open(str(store_dir)))
        assert served(restarted) == served(after), text
        if outcome.status == 201:
            assert restarted.epoch == after.epoch == 1

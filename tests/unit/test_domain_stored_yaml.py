"""`parse_stored_model_yaml` (libyaml's parser, for documents our services wrote) reads what
`parse_model_yaml` (the original's pure-Python parser) reads, and fails the same way when it
fails."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sie_actors.domain.model_config import dump_model_yaml
from sie_actors.domain.errors import DomainError
from sie_actors.domain.model_config import parse_model_yaml, parse_stored_model_yaml

MODELS = Path(__file__).resolve().parents[2] / "models"

scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=False), st.text(max_size=12))


def outcome(parse, body):
    try:
        return "ok", parse(body)
    except DomainError as exc:
        return type(exc).__name__, exc.status, exc.detail()


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_catalog_reads_the_same(path):
    text = path.read_text()
    assert parse_stored_model_yaml(text) == parse_model_yaml(text)
    dumped = dump_model_yaml(parse_model_yaml(text))
    assert parse_stored_model_yaml(dumped) == parse_model_yaml(dumped)


# strings full of YAML's special characters, as model documents may carry in names and options
nasty = st.text(alphabet=st.sampled_from(list(
    "!~*&%@`|>-?:#,[]{}'\"\\\t \n\r\x85\u2028\ufeff0aZ.eE+_/=\x07\ue000\U0001f600")), max_size=12)
emitted = st.recursive(
    st.one_of(scalars, nasty),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(nasty, st.integers(), st.booleans()), children, max_size=4)),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.one_of(nasty, st.text(max_size=8)), emitted, max_size=6),
       st.sampled_from([yaml.CDumper, yaml.Dumper]))
def test_emitted_documents_read_the_same(document, dumper):
    """Store files and delta documents are emitter output: ours (`dump_model_yaml`, libyaml's
    emitter) or the original's (`yaml.dump`, PyYAML's). Both parsers read those identically."""
    text = yaml.dump(document, Dumper=dumper, default_flow_style=False, sort_keys=False)
    plain = outcome(parse_model_yaml, text)
    stored = outcome(parse_stored_model_yaml, text)
    assert stored[0] == plain[0]
    assert _same(stored[1], plain[1]) if plain[0] == "ok" else stored == plain


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60),
                 st.builds(lambda k, v: f"{k}: {v}\n", st.text(max_size=10), st.text(max_size=20))))
def test_any_input_fails_as_on_the_write_path_or_reads_a_mapping(body):
    """Not for user input: on odd hand-written YAML libyaml is more lenient (a tab after `key:`)
    and may read a value differently (`0: !` is `{0: ''}`, not `{0: None}`). That is why POST
    bodies keep the pure parser, and this one only reads emitter output."""
    stored = outcome(parse_stored_model_yaml, body)
    if stored[0] == "ok":
        assert isinstance(stored[1], dict)
    else:
        assert stored == outcome(parse_model_yaml, body)


@pytest.mark.parametrize("body", [b"\xff\xfe", "- a\n- b\n", "a: [1, 2\n", "", "a: *x\n",
                                  "a: !!python/object:os.system x\n"])
def test_errors_read_exactly_as_on_the_write_path(body):
    assert outcome(parse_stored_model_yaml, body) == outcome(parse_model_yaml, body)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)

"""Profile resolution for adapters: one level of `extends`, options replaced wholesale."""

from __future__ import annotations

import pytest

from sie_actors.inference.errors import ModelLoadFailed
from sie_actors.inference.profile import resolve_profile

CONFIG = {"sie_id": "m", "profiles": {
    "default": {"adapter_path": "a:B", "max_batch_tokens": 100, "compute_precision": "float16",
                "adapter_options": {"loadtime": {"query_prefix": "q: "},
                                    "runtime": {"pooling": "mean", "normalize": True}}},
    "cls": {"extends": "default", "max_batch_tokens": 50,
            "adapter_options": {"runtime": {"pooling": "cls"}}},
    "broken": {"extends": "missing"},
    "bare": {"max_batch_tokens": 1}}}


def test_default_profile():
    p = resolve_profile(CONFIG)
    assert (p.adapter_path, p.max_batch_tokens, p.compute_precision) == ("a:B", 100, "float16")
    assert p.runtime == {"pooling": "mean", "normalize": True}


def test_child_overrides_and_replaces_runtime_wholesale():
    p = resolve_profile(CONFIG, "cls")
    assert (p.adapter_path, p.max_batch_tokens) == ("a:B", 50)
    assert p.runtime == {"pooling": "cls"}               # not merged with the parent's
    assert p.loadtime == {"query_prefix": "q: "}         # empty in the child: the parent's


@pytest.mark.parametrize("name, message", [("nope", "no profile 'nope'"),
                                           ("broken", "extends unknown profile 'missing'"),
                                           ("bare", "has no adapter_path")])
def test_unusable_profiles_are_load_failures(name, message):
    with pytest.raises(ModelLoadFailed, match=message):
        resolve_profile(CONFIG, name)

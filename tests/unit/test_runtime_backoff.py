"""Backoff: the numbers a supervisor sleeps for between restarts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sie_actors.runtime import Backoff


def test_grows_exponentially_without_jitter_and_caps() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0)
    delays = [backoff.next_delay() for _ in range(7)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert backoff.attempts == 7


def test_first_delay_within_jitter_of_initial() -> None:
    for seed in range(200):
        delay = Backoff(initial=1.0, jitter=0.2, rng=random.Random(seed)).next_delay()
        assert 0.8 <= delay <= 1.2


def test_jitter_actually_spreads_delays() -> None:
    rng = random.Random(3)
    firsts = {Backoff(initial=1.0, jitter=0.2, rng=rng).next_delay() for _ in range(50)}
    assert len(firsts) > 40
    assert min(firsts) < 0.9 and max(firsts) > 1.1


def test_same_seed_same_sequence() -> None:
    a = Backoff(rng=random.Random(7))
    b = Backoff(rng=random.Random(7))
    assert [a.next_delay() for _ in range(10)] == [b.next_delay() for _ in range(10)]


def test_cap_is_a_hard_ceiling_even_with_jitter() -> None:
    backoff = Backoff(initial=1.0, maximum=4.0, multiplier=3.0, jitter=0.5, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(500)]
    assert max(delays) <= 4.0
    # Once at the cap the spread is still downward jitter, never zero or negative.
    assert min(delays[5:]) >= 4.0 * 0.5


def test_reset_starts_over_from_initial() -> None:
    backoff = Backoff(initial=0.5, maximum=100.0, jitter=0.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == pytest.approx(0.5)
    assert backoff.next_delay() == pytest.approx(1.0)


def test_never_overflows() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0, multiplier=10.0, jitter=0.1)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert 54.0 <= delay <= 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.0},
        {"initial": -1.0},
        {"initial": 2.0, "maximum": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@given(
    initial=st.floats(min_value=0.001, max_value=10.0),
    span=st.floats(min_value=1.0, max_value=1000.0),
    multiplier=st.floats(min_value=1.0, max_value=5.0),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    seed=st.integers(min_value=0, max_value=2**32),
    steps=st.integers(min_value=1, max_value=60),
)
def test_every_delay_is_within_jitter_of_its_capped_base(
    initial: float, span: float, multiplier: float, jitter: float, seed: int, steps: int
) -> None:
    maximum = initial * span
    backoff = Backoff(initial, maximum, multiplier, jitter, rng=random.Random(seed))
    base = initial
    for _ in range(steps):
        delay = backoff.next_delay()
        assert base * (1 - jitter) * (1 - 1e-12) <= delay <= min(maximum, base * (1 + jitter))
        assert 0 < delay <= maximum
        base = min(maximum, base * multiplier)

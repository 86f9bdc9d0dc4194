"""Paired differences between arms on shared seeds: the interval on known numbers."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t

from atlantis.report.stats import paired_difference


def test_diffs_one_two_three_give_the_textbook_paired_t_interval() -> None:
    d = paired_difference({0: 11.0, 1: 12.0, 2: 13.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    half = t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd of [1, 2, 3] is 1
    assert d.diffs == (1.0, 2.0, 3.0) and d.seeds == (0, 1, 2) and d.n == 3
    assert d.mean == pytest.approx(2.0)
    assert d.lo == pytest.approx(2 - half) and d.hi == pytest.approx(2 + half)
    assert d.lo == pytest.approx(-0.4841377, abs=1e-6)  # 4.303 * 0.577: the interval spans 0
    assert not d.significant


def test_only_shared_seeds_are_paired() -> None:
    d = paired_difference({0: 0.7, 1: 0.72, 5: 0.9}, {0: 0.6, 1: 0.61, 7: 0.1})
    assert d.seeds == (0, 1) and d.diffs == pytest.approx((0.1, 0.11))
    half = t.ppf(0.975, 1) * math.sqrt(0.00005) / math.sqrt(2)
    assert d.hi - d.mean == pytest.approx(half)
    assert d.significant  # [0.105 - 0.064, 0.105 + 0.064] lies above 0


def test_an_interval_below_zero_is_significant_too() -> None:
    d = paired_difference({1: 0.60, 2: 0.61, 3: 0.59}, {1: 0.64, 2: 0.64, 3: 0.64})
    assert d.hi is not None and d.hi < 0 and d.significant


def test_one_seed_gives_no_interval_and_is_never_significant() -> None:
    d = paired_difference({3: 0.9}, {3: 0.1})
    assert d.n == 1 and d.mean == pytest.approx(0.8)
    assert d.lo is None and d.hi is None and not d.significant


def test_identical_differences_give_a_zero_width_interval() -> None:
    d = paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
    assert d.lo == d.hi == pytest.approx(1.0) and d.significant


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no shared seed.*\[0, 1\].*\[2\]"):
        paired_difference({0: 1.0, 1: 1.0}, {2: 1.0})
    with pytest.raises(ValueError, match=r"b\[seed 1\] is nan"):
        paired_difference({0: 1.0, 1: 1.0}, {0: 1.0, 1: float("nan")})
    with pytest.raises(ValueError, match="confidence"):
        paired_difference({0: 1.0}, {0: 1.0}, confidence=95)

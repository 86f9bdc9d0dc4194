"""eta (supplement E.3) measured on a naive budget curve: interpolation, "> b_max", bad input."""

from __future__ import annotations

import math

import pytest

from atlantis.report.efficiency import Beyond, eta, eta_curve, naive_budget_to_reach

# Naive R@1 by synthetic budget; budget 0 is the baseline. Not monotone: dips at 300.
NAIVE = [(0, 0.600), (100, 0.620), (200, 0.650), (300, 0.640), (400, 0.700)]


def test_linear_interpolation_on_a_hand_made_curve() -> None:
    assert naive_budget_to_reach(NAIVE, 0.610) == pytest.approx(50.0)  # from the baseline point
    assert naive_budget_to_reach(NAIVE, 0.635) == pytest.approx(150.0)
    assert naive_budget_to_reach(NAIVE, 0.620) == pytest.approx(100.0)  # exactly a point
    # 0.66 is first reached between 300 (0.64) and 400 (0.70): 300 + 100 * 0.02 / 0.06
    assert naive_budget_to_reach(NAIVE, 0.660) == pytest.approx(300 + 100 / 3)


def test_the_first_crossing_wins_on_a_curve_that_dips() -> None:
    # 0.645 is reached at 183.3 (between 100 and 200), again after the dip: the first counts
    assert naive_budget_to_reach(NAIVE, 0.645) == pytest.approx(100 + 100 * 0.025 / 0.03)


def test_eta_is_the_naive_budget_over_the_targeted_budget() -> None:
    e = eta(NAIVE, 0.635, 50)  # targeted at 50 images matches naive at 150
    assert e.naive_budget == pytest.approx(150.0) and e.ratio == pytest.approx(3.0)
    assert not e.is_lower_bound and str(e) == "3.00"
    assert eta(NAIVE, 0.55, 100).ratio == 0.0  # below the baseline: no image needed


def test_a_target_naive_never_reaches_is_beyond_b_max() -> None:
    e = eta(NAIVE, 0.75, 100)
    assert e.naive_budget == Beyond(400.0) and str(e.naive_budget) == "> 400"
    assert e.is_lower_bound and e.ratio == pytest.approx(4.0) and str(e) == "> 4.00"


def test_eta_curve_at_every_targeted_budget() -> None:
    out = eta_curve(NAIVE, [(100, 0.635), (200, 0.66), (300, 0.69), (400, 0.8)])
    assert [round(e.ratio, 3) for e in out] == [1.5, round((300 + 100 / 3) / 200, 3),
                                                round((300 + 500 / 6) / 300, 3), 1.0]  # fmt: skip
    assert out[-1].naive_budget == Beyond(400.0)


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ([], "empty"),
        ([(0, 0.6), (100, 0.62), (100, 0.63)], r"strictly increasing: 100 at point 2 follows 100"),
        ([(0, 0.6), (200, 0.62), (100, 0.63)], r"strictly increasing: 100 at point 2 follows 200"),
        ([(0, 0.6), (100, math.nan)], r"R@1 at point 1 \(budget 100\) is nan"),
        ([(0, 0.6), (math.inf, 0.7)], r"budget at point 1 is inf"),
        ([(-10, 0.6)], r"budget at point 0 is -10"),
        ([(0, 0.6), (100,)], r"point 1 is \(100,\), not a \(budget, R@1\) pair"),
        ([(0, "x")], r"R@1 at point 0 \(budget 0\) is 'x', not a number"),
    ],
)
def test_a_bad_curve_names_the_bad_value(curve: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        eta(curve, 0.6, 100)


def test_bad_targets_and_mismatched_curves_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="targeted R@1 is nan"):
        eta(NAIVE, math.nan, 100)
    with pytest.raises(ValueError, match="targeted budget is 0"):
        eta(NAIVE, 0.6, 0)
    with pytest.raises(ValueError, match="targeted curve has 2 budgets, the naive one 4"):
        eta_curve(NAIVE, [(100, 0.6), (200, 0.7)])

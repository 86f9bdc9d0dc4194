"""Measured efficiency gain eta (supplement E.3): how many naive images one targeted image is worth.

Given the naive arm's R@1 at increasing synthetic budgets and the targeted arm's R@1 at a
budget ``b``, eta(b) = (the naive budget that reaches targeted's R@1) / ``b``. The naive budget
is read off the naive curve by linear interpolation between measured points, at the first
budget where the curve reaches the target (the curve need not be monotone; the first crossing
is the cheapest budget that was seen to reach it). When the naive curve never reaches the
target the answer is only a lower bound, "> b_max", and :class:`Beyond` says so instead of
extrapolating a number the run never measured.

Pure functions on numbers; wiring budget curves into the loop is separate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Beyond", "Efficiency", "eta", "eta_curve", "naive_budget_to_reach"]


@dataclass(frozen=True)
class Beyond:
    """The naive curve never reached the target within its largest budget ``b_max``."""

    b_max: float

    def __str__(self) -> str:
        return f"> {self.b_max:g}"


@dataclass(frozen=True)
class Efficiency:
    """eta at one targeted budget: ``naive_budget`` (or :class:`Beyond`) and its ratio to ``budget``.

    For :class:`Beyond`, ``ratio`` is ``b_max / budget``, a lower bound (``is_lower_bound``).
    """

    budget: float
    naive_budget: float | Beyond
    ratio: float

    @property
    def is_lower_bound(self) -> bool:
        return isinstance(self.naive_budget, Beyond)

    def __str__(self) -> str:
        return f"> {self.ratio:.2f}" if self.is_lower_bound else f"{self.ratio:.2f}"


def _finite(value: object, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} is {value!r}, not a finite number")
    return x


def _check_curve(curve: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The curve as floats; budgets >= 0 and strictly increasing, every value finite."""
    if len(curve) == 0:
        raise ValueError("naive curve is empty: give at least one (budget, R@1) point")
    points = []
    for i, point in enumerate(curve):
        try:
            b, r = point
        except (TypeError, ValueError):
            raise ValueError(
                f"naive curve point {i} is {point!r}, not a (budget, R@1) pair"
            ) from None
        b = _finite(b, f"naive curve budget at point {i}")
        r = _finite(r, f"naive curve R@1 at point {i} (budget {b:g})")
        if b < 0:
            raise ValueError(f"naive curve budget at point {i} is {b:g}, budgets are >= 0")
        if points and b <= points[-1][0]:
            raise ValueError(
                f"naive curve budgets must be strictly increasing: {b:g} at point {i} "
                f"follows {points[-1][0]:g}"
            )
        points.append((b, r))
    return points


def naive_budget_to_reach(
    naive_curve: Sequence[tuple[float, float]], target: float
) -> float | Beyond:
    """The smallest naive budget whose interpolated R@1 reaches ``target`` (first crossing).

    ``naive_curve`` is ``[(budget, R@1), ...]`` with strictly increasing budgets; include
    ``(0, baseline R@1)`` when known, so a target below the first augmented point is
    interpolated from the baseline rather than reported as the first budget. A target at or
    below the first point's R@1 needs that point's budget. Returns :class:`Beyond` when no
    point reaches ``target``.
    """
    points = _check_curve(naive_curve)
    target = _finite(target, "targeted R@1")
    b0, r0 = points[0]
    if r0 >= target:
        return b0
    for b1, r1 in points[1:]:
        if r1 >= target:  # r0 < target <= r1: the crossing lies in (b0, b1]
            return b0 + (b1 - b0) * (target - r0) / (r1 - r0)
        b0, r0 = b1, r1
    return Beyond(points[-1][0])


def eta(
    naive_curve: Sequence[tuple[float, float]], targeted_value: float, budget: float
) -> Efficiency:
    """eta(budget): the naive budget reaching ``targeted_value`` (targeted's R@1 at ``budget``)
    divided by ``budget``.

    ``budget`` must be finite and > 0 (eta of zero images is undefined). See
    :func:`naive_budget_to_reach` for the curve's rules.
    """
    b = _finite(budget, "targeted budget")
    if b <= 0:
        raise ValueError(f"targeted budget is {b:g}; eta needs a budget > 0")
    needed = naive_budget_to_reach(naive_curve, targeted_value)
    top = needed.b_max if isinstance(needed, Beyond) else needed
    return Efficiency(budget=b, naive_budget=needed, ratio=top / b)


def eta_curve(
    naive_curve: Sequence[tuple[float, float]], targeted_curve: Sequence[tuple[float, float]]
) -> list[Efficiency]:
    """eta at every budget of the targeted curve (``[(budget, R@1), ...]``, budgets > 0).

    Both curves are validated the same way; they need not share budgets, but a curve with a
    different number of points than the naive one is usually a mistake in a budget sweep that
    trains both arms at each budget, so that is refused with the two lengths named.
    """
    naive = _check_curve(naive_curve)
    targeted = _check_curve(targeted_curve)
    augmented = [p for p in naive if p[0] > 0]
    if len(augmented) != len(targeted):
        raise ValueError(
            f"the targeted curve has {len(targeted)} budgets, the naive one {len(augmented)} "
            "(not counting a budget-0 baseline point); a budget sweep trains both at each budget"
        )
    return [eta(naive, r, b) for b, r in targeted]

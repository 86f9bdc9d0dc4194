"""The typical class size against hand-computed counts."""

from __future__ import annotations

import pytest

from atlantis.insight.sizes import small_class_threshold, typical_class_size


def test_typical_size_is_the_mean_of_the_upper_half() -> None:
    assert typical_class_size([10, 4, 2, 8]) == pytest.approx(9.0)  # median 6: (10 + 8) / 2
    assert typical_class_size([5]) == 5.0 and typical_class_size([]) == 0.0
    # half the classes cut to 2: the median (3.5) is nearly a cut class, T is not
    cut = [2] * 10 + [20] * 10
    assert typical_class_size(cut) == pytest.approx(20.0)
    assert small_class_threshold(cut) == 10
    # most classes cut (every count >= the median 2): T is the mean of all
    assert typical_class_size([2] * 3 + [30]) == pytest.approx(9.0)
    assert small_class_threshold([1, 1, 1]) == 1  # never below one image

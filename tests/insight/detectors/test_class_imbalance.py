"""Class imbalance against hand-computed counts: typical size 9, threshold 4.5 images."""

from __future__ import annotations

import json

import pytest

from atlantis.insight.detectors import DetectorInputs
from atlantis.insight.detectors.class_imbalance import ClassImbalance
from tests.insight.detectors._helpers import make_records

# a: 10, b: 4, c: 2, d: 8 -> median 6; the classes at or above it (10, 8) average T = 9;
# 0.5 * 9 = 4.5 -> c (2) and b (4) are flagged.
LABELS = ["a"] * 10 + ["b"] * 4 + ["c"] * 2 + ["d"] * 8


def test_scores_are_count_over_typical_size_clipped() -> None:
    result = ClassImbalance().run(DetectorInputs(records=make_records(LABELS)))
    scores = {i.key: i.score for i in result.items}
    assert scores == pytest.approx({"a": 1.0, "b": 4 / 9, "c": 2 / 9, "d": 8 / 9})
    assert [i.key for i in result.flagged()] == ["c", "b"]
    detail = next(i.detail for i in result.items if i.key == "c")
    assert detail == pytest.approx(
        {"count": 2, "share": 2 / 24, "ratio_to_typical": 2 / 9, "ratio_to_median": 2 / 6,
         "ratio_to_max": 0.2}
    )  # fmt: skip


def test_most_classes_cut_to_two_are_still_flagged() -> None:
    """The paper's class-imbalance setting: the median is a cut class, T is not."""
    counts = {f"cut{i}": 2 for i in range(30)} | {f"full{i}": 20 + i for i in range(10)}
    result = ClassImbalance().from_counts(counts)
    assert result.summary["median_count"] == 2.0
    # every count is >= the median 2, so T is the mean of all: (60 + 245) / 40
    assert result.summary["typical_count"] == pytest.approx((30 * 2 + sum(range(20, 30))) / 40)
    assert {i.key for i in result.flagged()} == {f"cut{i}" for i in range(30)}
    even = ClassImbalance().from_counts({f"c{i}": 50 + i % 3 for i in range(20)})
    assert not even.flagged()  # nothing small: nothing flagged


def test_summary_numbers() -> None:
    s = ClassImbalance().run(DetectorInputs(records=make_records(LABELS))).summary
    assert (s["n_classes"], s["n_images"]) == (4, 24)
    assert (s["min_count"], s["median_count"], s["max_count"]) == (2, 6.0, 10)
    assert s["imbalance_ratio"] == pytest.approx(5.0)
    assert s["typical_count"] == pytest.approx(9.0)
    assert s["threshold_count"] == pytest.approx(4.5)
    assert s["flagged"] == [{"class": "c", "count": 2, "score": pytest.approx(2 / 9)},
                            {"class": "b", "count": 4, "score": pytest.approx(4 / 9)}]  # fmt: skip


def test_higher_threshold_flags_more_most_severe_first() -> None:
    result = ClassImbalance(threshold=0.95).from_counts({"a": 10, "b": 4, "c": 2, "d": 8})
    assert [i.key for i in result.flagged()] == ["c", "b", "d"]  # 0.22, 0.44, 0.89


def test_flagged_list_is_capped_and_json_ready() -> None:
    counts = {f"class{i:02d}": 1 for i in range(30)} | {f"big{i:02d}": 100 for i in range(31)}
    result = ClassImbalance(max_listed=20).from_counts(counts)
    assert result.summary["n_flagged"] == 30
    assert len(result.summary["flagged"]) == 20
    view = result.to_dict(max_items=5)
    assert len(view["top_items"]) == 5 and view["n_flagged"] == 30
    json.dumps(view)  # plain JSON types only


@pytest.mark.parametrize("threshold", [0.0, -1.0, 1.5])
def test_rejects_threshold_outside_unit_interval(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        ClassImbalance(threshold=threshold)

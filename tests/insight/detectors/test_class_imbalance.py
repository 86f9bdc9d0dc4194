"""Class imbalance against hand-computed counts: median 6, threshold 3 images."""

from __future__ import annotations

import json

import pytest

from atlantis.insight.detectors import DetectorInputs
from atlantis.insight.detectors.class_imbalance import ClassImbalance
from tests.insight.detectors._helpers import make_records

# a: 10, b: 4, c: 2, d: 8 -> median (4 + 8) / 2 = 6; 0.5 * 6 = 3 -> only c (2) is flagged.
LABELS = ["a"] * 10 + ["b"] * 4 + ["c"] * 2 + ["d"] * 8


def test_scores_are_count_over_median_clipped() -> None:
    result = ClassImbalance().run(DetectorInputs(records=make_records(LABELS)))
    scores = {i.key: i.score for i in result.items}
    assert scores == pytest.approx({"a": 1.0, "b": 4 / 6, "c": 2 / 6, "d": 1.0})
    assert [i.key for i in result.flagged()] == ["c"]
    detail = next(i.detail for i in result.items if i.key == "c")
    assert detail == pytest.approx(
        {"count": 2, "share": 2 / 24, "ratio_to_median": 2 / 6, "ratio_to_max": 0.2}
    )


def test_summary_numbers() -> None:
    s = ClassImbalance().run(DetectorInputs(records=make_records(LABELS))).summary
    assert (s["n_classes"], s["n_images"]) == (4, 24)
    assert (s["min_count"], s["median_count"], s["max_count"]) == (2, 6.0, 10)
    assert s["imbalance_ratio"] == pytest.approx(5.0)
    assert s["threshold_count"] == pytest.approx(3.0)
    assert s["flagged"] == [{"class": "c", "count": 2, "score": pytest.approx(1 / 3)}]


def test_higher_threshold_flags_more_most_severe_first() -> None:
    result = ClassImbalance(threshold=0.9).from_counts({"a": 10, "b": 4, "c": 2, "d": 8})
    assert [i.key for i in result.flagged()] == ["c", "b"]  # 0.33 before 0.67


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

"""Outliers by the ORDC rule (||x - mu_c|| > delta r_c) and the kNN score, on tiny layouts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atlantis.insight.detectors import DetectorInputs
from atlantis.insight.detectors.outliers import Outliers
from tests.insight.detectors._helpers import make_records


def inputs(points: list[list[float]], labels: list[str], extra_ids: int = 0) -> DetectorInputs:
    records = make_records(labels)
    ids = [r.id for r in records] + [f"stranger{i}" for i in range(extra_ids)]
    return DetectorInputs(
        records=records, embeddings=np.array(points, dtype=np.float32), embedding_ids=ids
    )


def test_one_dimensional_class_by_hand() -> None:
    # Points 0, 1, 2, 3, 10: centroid 3.2, distances 3.2 2.2 1.2 0.2 6.8, r = 13.6 / 5 = 2.72;
    # 10 has ratio 6.8 / 2.72 = 2.5 > 2. Nearest-neighbour distances (k=1): 1 1 1 1 7, median 1.
    data = inputs([[0.0], [1.0], [2.0], [3.0], [10.0]], ["a"] * 5)
    result = Outliers(k=1, normalize=False).run(data)
    assert [i.key for i in result.flagged()] == ["img4"]
    outlier = result.flagged()[0]
    assert outlier.detail["class_radius"] == pytest.approx(2.72)
    assert outlier.detail["ratio"] == pytest.approx(2.5)
    assert outlier.score == pytest.approx(2 ** (-2.5 / 2))
    assert outlier.detail["knn_score"] == pytest.approx(math.exp(-7))
    first = next(i for i in result.items if i.key == "img0")
    assert first.score == pytest.approx(2 ** (-(3.2 / 2.72) / 2))
    assert first.detail["knn_score"] == pytest.approx(math.exp(-1))
    assert result.summary["most_isolated"][0]["id"] == "img4"
    assert Outliers(k=1, delta=3.0, normalize=False).run(data).flagged() == []


def test_summary_small_classes_and_unlabelled_rows() -> None:
    # a: 4 unit points and two far ones at +-10: centroid 0, r = (4 + 20) / 6 = 4, ratio 2.5.
    # b: two images (below min_class_size 3); c: three identical images (r = 0, no outlier).
    points = [[1, 0], [-1, 0], [0, 1], [0, -1], [10, 0], [-10, 0]]
    points += [[5, 5], [6, 6], [3, -3], [3, -3], [3, -3], [50, 50]]
    data = inputs(points, ["a"] * 6 + ["b"] * 2 + ["c"] * 3, extra_ids=1)
    result = Outliers(normalize=False).run(data)
    s = result.summary
    assert {i.key for i in result.flagged()} == {"img4", "img5"}
    assert s["n_outliers"] == 2 and s["n_images"] == 9 and s["n_classes_checked"] == 2
    assert s["outliers_per_class"] == [
        {"class": "a", "n_outliers": 2, "n_images": 6, "class_radius": pytest.approx(4.0)}
    ]
    assert s["classes_too_small"] == ["b"] and s["n_unlabelled_rows"] == 1
    assert all(i.score == 1.0 for i in result.items if i.detail["class"] == "c")
    json.dumps(result.to_dict())


def test_normalising_ignores_feature_length() -> None:
    # Five points near direction (1, 0) and one 100x longer on it. Raw: centroid x = 17.5, the
    # long one is ~3 radii away (flagged); on the unit sphere it sits at the centroid.
    points = [[1, 0.1], [1, -0.1], [1, 0], [1, 0.05], [1, -0.05], [100, 0]]
    data = inputs(points, ["a"] * 6)
    assert [i.key for i in Outliers(normalize=False).run(data).flagged()] == ["img5"]
    assert Outliers(normalize=True).run(data).flagged() == []


def test_no_matching_ids_is_an_error() -> None:
    data = DetectorInputs(
        records=make_records(["a"]),
        embeddings=np.ones((2, 2), np.float32),
        embedding_ids=["x", "y"],
    )
    with pytest.raises(ValueError, match="no embedding id"):
        Outliers().run(data)

"""The class-consistency rule on hand-made 2-D embeddings, against ORDC's radius rule.

Class A is broad and lies along the x axis, class B is tight and lies on the y axis:
A real (10, 8), (10, -8): centroid (10, 0), radius 8; cosine centroid direction (1, 0).
B real (1, 10), (-1, 10): centroid (0, 10), radius 1; cosine centroid direction (0, 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import atlantis.filtering.consistency as consistency_module
from atlantis.filtering.consistency import (
    CONSISTENT,
    INCONSISTENT,
    consistency,
    consistency_keep,
)
from atlantis.filtering.ordc import INLIER, NEW_CLASS, OUTLIER, ordc

REAL = np.array([[10, 8], [10, -8], [1, 10], [-1, 10]], np.float32)
REAL_Y = ["A", "A", "B", "B"]
SHIFTED = [30, 2]  # an A image of a new domain: along A's direction, far from its centroid
WRONG = [4, 7]  # labelled A, inside A's radius, but B's picture: nearer B on both metrics
TIE = [5, 5]  # equally similar (cosine) to A's and B's centroids
CLOSE = [6, 4]  # A wins by cosine 2 / sqrt(52)


def test_domain_shifted_image_radius_removes_consistency_keeps() -> None:
    syn, y = np.array([SHIFTED], np.float32), ["A"]
    radius = ordc(REAL, REAL_Y, syn, y, 1.5)
    assert radius.reason[0] == OUTLIER  # distance sqrt(404) = 20.1 > 1.5 * 8
    for metric, margin in (("cosine", 28 / math.sqrt(904)), ("euclidean",
                                                             math.sqrt(964) - math.sqrt(404))):  # fmt: skip
        res = consistency(REAL, REAL_Y, syn, y, metric=metric)
        assert res.keep[0] and res.reason[0] == CONSISTENT
        assert res.margin[0] == pytest.approx(margin)
        assert res.best_other_class(0) == "B"


def test_wrong_class_image_inside_the_radius_is_removed() -> None:
    syn, y = np.array([WRONG], np.float32), ["A"]
    radius = ordc(REAL, REAL_Y, syn, y, 1.5)
    assert radius.reason[0] == INLIER and radius.ratio[0] == pytest.approx(math.sqrt(85) / 8)
    cos = consistency(REAL, REAL_Y, syn, y)
    assert not cos.keep[0] and cos.reason[0] == INCONSISTENT
    assert cos.margin[0] == pytest.approx((4 - 7) / math.sqrt(65))  # cos to A - cos to B
    assert cos.best_other_class(0) == "B"
    euc = consistency(REAL, REAL_Y, syn, y, metric="euclidean")
    assert not euc.keep[0] and euc.margin[0] == pytest.approx(5 - math.sqrt(85))


def test_tie_is_kept_and_margin_is_a_minimum() -> None:
    syn = np.array([TIE, CLOSE], np.float32)
    res = consistency(REAL, REAL_Y, syn, ["A", "A"])
    assert res.margin.tolist() == pytest.approx([0.0, 2 / math.sqrt(52)], abs=1e-12)
    assert res.keep.tolist() == [True, True]  # a tie keeps, as ORDC's boundary does
    for margin, expected in ((0.01, [False, True]), (0.27, [False, True]),
                             (0.28, [False, False]), (-0.01, [True, True])):  # fmt: skip
        assert consistency_keep(REAL, REAL_Y, syn, ["A", "A"], min_margin=margin).tolist() == (
            expected
        )
    # Exactly at the margin (within float rounding): kept.
    at = consistency(REAL, REAL_Y, syn[1:], ["A"], min_margin=2 / math.sqrt(52))
    assert at.keep[0]


def test_tie_between_other_classes_names_the_first_label() -> None:
    real = np.array([[1, 0], [0, 1], [0, -1]], np.float32)
    res = consistency(real, ["a", "c", "b"], [[-1, 0]], ["a"])  # b and c both at cosine 0
    assert res.best_other_class(0) == "b" and res.margin[0] == pytest.approx(-1.0)


# Three classes on the x axis for the vote: A at 0, 1, 2; B at 10, 11, 12.
REAL_K = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [11, 0], [12, 0]], np.float32)
REAL_K_Y = ["A", "A", "A", "B", "B", "B"]


def test_knn_vote_by_hand() -> None:
    syn = np.array([[4, 0.5], [7.5, 0.5], [6.2, 0.3]], np.float32)
    res = consistency(REAL_K, REAL_K_Y, syn, ["A", "A", "A"], vote="knn", k=3,
                      metric="euclidean")  # fmt: skip
    # (4, .5): A2, A1, A0 -> 3 own votes; (7.5, .5): B10, B11, B12 -> none;
    # (6.2, .3): B10 (3.81), A2 (4.21), B11 (4.81) -> own 1, B 2.
    assert res.own_votes.tolist() == [3, 0, 1]
    assert res.margin.tolist() == pytest.approx([1.0, -1.0, -1 / 3])
    assert res.keep.tolist() == [True, False, False]
    assert [res.best_other_class(i) for i in range(3)] == [None, "B", "B"]
    # k = 5 for the third: B10, A2, B11, A1 (5.21), B12 (5.81) -> own 2, B 3: still removed;
    # k = 2: own 1, B 1 -> a tie, kept.
    five = consistency(REAL_K, REAL_K_Y, syn[2:], ["A"], vote="knn", k=5, metric="euclidean")
    assert five.own_votes[0] == 2 and not five.keep[0]
    two = consistency(REAL_K, REAL_K_Y, syn[2:], ["A"], vote="knn", k=2, metric="euclidean")
    assert two.margin[0] == 0 and two.keep[0]
    assert not consistency(REAL_K, REAL_K_Y, syn[2:], ["A"], vote="knn", k=2,
                           metric="euclidean", min_margin=0.5).keep[0]  # fmt: skip


def test_knn_k_is_capped_at_the_real_set() -> None:
    res = consistency(REAL_K, REAL_K_Y, [[4, 0.5]], ["A"], vote="knn", k=100, metric="euclidean")
    assert res.k == 6 and res.own_votes[0] == 3 and res.margin[0] == 0 and res.keep[0]


def test_knn_vote_caps_a_small_class_where_the_centroid_does_not() -> None:
    """Why the centroid mode is the default: a 2-image class gets at most 2 of k votes."""
    real = np.array([[0, 0], [0.5, 0], [3, 0], [3.2, 0], [3.4, 0], [3.6, 0]], np.float32)
    y = ["small", "small", "big", "big", "big", "big"]
    syn, lab = [[1.4, 0]], ["small"]  # nearer the small centroid (0.25) than the big (3.3)
    assert consistency_keep(real, y, syn, lab, metric="euclidean")[0]
    assert not consistency_keep(real, y, syn, lab, metric="euclidean", vote="knn", k=5)[0]


def test_new_classes_and_a_single_real_class() -> None:
    res = consistency(REAL, REAL_Y, [[0, 1], [9, 0]], ["Z", "A"])
    assert res.reason.tolist() == [NEW_CLASS, CONSISTENT] and res.new_class.tolist() == [
        True, False]  # fmt: skip
    assert np.isnan(res.margin[0]) and res.best_other[0] == -1 and res.keep[0]
    dropped = consistency(REAL, REAL_Y, [[0, 1]], ["Z"], keep_unknown_classes=False)
    assert not dropped.keep[0] and dropped.reason[0] == NEW_CLASS
    one = consistency(REAL[:2], REAL_Y[:2], [[-5, 3]], ["A"])  # no competitor at all
    assert one.keep[0] and one.margin[0] == math.inf and one.best_other_class(0) is None
    assert consistency(np.zeros((0, 2)), [], [[1, 1]], ["A"]).new_class.all()


def test_empty_synthetic_set() -> None:
    for empty in ([], np.zeros((0, 2))):
        res = consistency(REAL, REAL_Y, empty, [])
        assert res.keep.shape == (0,) and res.keep.dtype == bool


def test_normalize_changes_the_euclidean_geometry() -> None:
    # A: long vectors around (4, 0); B: short ones around (0, 0.6). Raw, (1, 0.9) is nearer
    # B's centroid (distance 1.04 vs 3.13); L2-normalised, its direction is nearer A's.
    real = np.array([[4, 1], [4, -1], [0.5, 0.6], [-0.5, 0.6]], np.float32)
    syn, y = np.array([[1, 0.9]], np.float32), ["A"]
    raw = consistency(real, ["A", "A", "B", "B"], syn, y, metric="euclidean")
    unit = consistency(real, ["A", "A", "B", "B"], syn, y, metric="euclidean", normalize=True)
    assert not raw.keep[0] and raw.margin[0] == pytest.approx(math.sqrt(1.09) - math.sqrt(9.81))
    assert unit.keep[0] and unit.margin[0] > 0


def test_chunks_match_one_block_and_a_naive_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(120, 6)).astype(np.float32)
    y_real = rng.integers(0, 9, 120)
    syn = rng.normal(size=(400, 6)).astype(np.float32)
    y_syn = rng.integers(0, 9, 400)
    whole = consistency(real, y_real, syn, y_syn, metric="euclidean")
    monkeypatch.setattr(consistency_module, "_CHUNK_CELLS", 9 * 7)  # 7 rows per chunk
    chunked = consistency(real, y_real, syn, y_syn, metric="euclidean")
    np.testing.assert_allclose(chunked.margin, whole.margin, rtol=1e-9, atol=1e-9)
    assert (chunked.best_other == whole.best_other).all()
    cents = np.stack([real[y_real == c].astype(np.float64).mean(0) for c in range(9)])
    dist = np.linalg.norm(syn[:, None, :].astype(np.float64) - cents[None], axis=2)
    own = dist[np.arange(400), y_syn]
    dist[np.arange(400), y_syn] = np.inf
    np.testing.assert_allclose(whole.margin, dist.min(1) - own, rtol=1e-7, atol=1e-9)
    clear = np.abs(whole.margin) > 1e-6  # no float-rounding ties in the comparison
    assert (whole.keep[clear] == (dist.min(1) >= own)[clear]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "manhattan"}, "metric must be 'cosine' or 'euclidean'"),
        ({"vote": "majority"}, "vote must be 'centroid' or 'knn'"),
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.5}, "k must be an integer >= 1"),
        ({"min_margin": float("nan")}, "min_margin must be a finite number"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        consistency(REAL, REAL_Y, [[1, 1]], ["A"], **kwargs)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="dim 2 but synthetic_embeddings have dim 1"):
        consistency(REAL, REAL_Y, [[1.0]], ["A"])
    with pytest.raises(ValueError, match="synthetic_labels has 2 labels"):
        consistency(REAL, REAL_Y, [[1, 1]], ["A", "B"])
    with pytest.raises(ValueError, match=r"synthetic_embeddings: 1 of 1 rows"):
        consistency(REAL, REAL_Y, [[np.nan, 1]], ["A"])

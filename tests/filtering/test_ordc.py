"""ORDC's delta rule: a hand-checked 2-D example, its invariants, and its input checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from atlantis.filtering.ordc import INLIER, NEW_CLASS, OUTLIER, ordc, ordc_keep

# Class a: real points at distance 1, 1, 3, 3 from their centroid (0, 0), so r_a = 2.
# Class b: two real points 2 apart, centroid (11, 10), r_b = 1.
# Class d: a single real image, r_d = 0 -> fallback radius = median(r_a, r_b) = 1.5.
REAL = np.array([[1, 0], [-1, 0], [0, 3], [0, -3], [10, 10], [12, 10], [20, 20]], np.float32)
REAL_Y = ["a", "a", "a", "a", "b", "b", "d"]
# Distances to the centroid:   0    3 (ratio 1.5)  4 (2)   0.5 (0.5) 2 (2)  new  1 (2/3) 3 (2)
SYN = np.array([[0, 0], [3, 0], [0, 4], [11, 10.5], [11, 12], [5, 5], [20, 21], [20, 23]],
               np.float32)  # fmt: skip
SYN_Y = ["a", "a", "a", "b", "b", "c", "d", "d"]


def run(delta: float, **kw) -> object:
    with pytest.warns(RuntimeWarning, match="zero radius"):
        return ordc(REAL, REAL_Y, SYN, SYN_Y, delta, **kw)


def test_hand_computed_example() -> None:
    res = run(1.5)
    assert res.classes.tolist() == ["a", "b", "d"]
    assert res.n_real.tolist() == [4, 2, 1]
    np.testing.assert_allclose(res.centroids, [[0, 0], [11, 10], [20, 20]])
    np.testing.assert_allclose(res.radius, [2.0, 1.0, 1.5])
    assert res.class_fallback.tolist() == [False, False, True] and res.fallback_radius == 1.5
    np.testing.assert_allclose(res.distance, [0, 3, 4, 0.5, 2, np.nan, 1, 3])
    np.testing.assert_allclose(res.ratio, [0, 1.5, 2, 0.5, 2, np.nan, 2 / 3, 2])
    # (3, 0) sits exactly on the boundary 1.5 * 2 = 3 and is kept.
    assert res.keep.tolist() == [True, True, False, True, False, True, True, False]
    assert res.reason.tolist() == [INLIER, INLIER, OUTLIER, INLIER, OUTLIER, NEW_CLASS,
                                   INLIER, OUTLIER]  # fmt: skip
    assert res.new_class.tolist() == [False] * 5 + [True, False, False]
    assert res.fallback.tolist() == [False] * 6 + [True, True]
    assert res.class_index.tolist() == [0, 0, 0, 1, 1, -1, 2, 2]
    assert res.class_table()[2] == {"class": "d", "n_real": 1, "radius": 1.5, "raw_radius": 0.0,
                                    "fallback": True}  # fmt: skip


def test_ordc_keep_is_the_mask_and_delta_one_is_tighter() -> None:
    with pytest.warns(RuntimeWarning):
        keep = ordc_keep(REAL, REAL_Y, SYN, SYN_Y, 1.0)
    assert keep.dtype == bool
    assert keep.tolist() == [True, False, False, True, False, True, True, False]


def test_inf_keeps_everything() -> None:
    res = run(math.inf)
    assert res.keep.all() and set(res.reason) == {INLIER, NEW_CLASS}


def test_new_classes_can_be_dropped() -> None:
    res = run(math.inf, keep_unknown_classes=False)
    assert res.keep.tolist() == [True] * 5 + [False] + [True] * 2
    assert res.reason[5] == NEW_CLASS and np.isnan(res.distance[5])


def test_smaller_delta_keeps_a_subset() -> None:
    rng = np.random.default_rng(0)
    real, syn = rng.normal(size=(300, 8)), rng.normal(scale=1.5, size=(1000, 8))
    y_real, y_syn = rng.integers(0, 12, 300), rng.integers(0, 14, 1000)  # 12, 13: new
    masks = [ordc_keep(real, y_real, syn, y_syn, d) for d in (0.5, 1.0, 1.2, 1.5, 2.0, math.inf)]
    for small, large in itertools.pairwise(masks):
        assert not (small & ~large).any()
    assert masks[0].sum() < masks[3].sum() < masks[-1].sum() == 1000


def test_matches_a_naive_per_class_loop() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 5)).astype(np.float32)
    syn = rng.normal(scale=1.3, size=(500, 5)).astype(np.float32)
    y_real, y_syn = rng.integers(0, 7, 200), rng.integers(0, 7, 500)
    expected = np.empty(500, dtype=bool)
    for c in range(7):
        members = real[y_real == c].astype(np.float64)
        mu = members.mean(axis=0)
        r = np.linalg.norm(members - mu, axis=1).mean()
        rows = y_syn == c
        expected[rows] = np.linalg.norm(syn[rows] - mu, axis=1) <= 1.2 * r
    assert (ordc_keep(real, y_real, syn, y_syn, 1.2) == expected).all()


def test_normalize_is_optional_and_changes_the_geometry() -> None:
    real = np.array([[1, 0], [2, 0], [0, 1]], float)  # class x: same direction, different norm
    syn = np.array([[10, 0]], float)
    assert not ordc_keep(real[:2], ["x", "x"], syn, ["x"], 1.0)[0]
    with pytest.warns(RuntimeWarning, match="zero radius"):  # both real points become (1, 0)
        res = ordc(real[:2], ["x", "x"], syn, ["x"], 1.0, normalize=True)
    assert res.keep[0] and res.normalized
    # With a second direction in the class, the normalised synthetic image is inside it.
    res = ordc(real, ["x"] * 3, syn, ["x"], 1.0, normalize=True)
    assert res.keep[0] and res.distance[0] < res.radius[0]


def test_all_single_image_classes_fall_back_to_keeping() -> None:
    with pytest.warns(RuntimeWarning, match="inf"):
        res = ordc([[0.0, 0.0]], ["a"], [[5.0, 5.0]], ["a"], 1.0)
    assert res.keep[0] and res.fallback[0] and np.isnan(res.ratio[0])


def test_empty_synthetic_set_gives_an_empty_mask() -> None:
    for empty in ([], np.zeros((0, 2))):
        res = ordc(REAL[:2], ["a", "a"], empty, [], 1.0)
        assert res.keep.shape == (0,) and res.keep.dtype == bool


def test_no_real_images_at_all() -> None:
    res = ordc(np.zeros((0, 2)), [], SYN, SYN_Y, 1.0)
    assert res.keep.all() and res.new_class.all()


def test_integer_labels() -> None:
    assert ordc_keep(REAL[:4], [7] * 4, SYN[:3], [7] * 3, 1.5).tolist() == [True, True, False]


@pytest.mark.parametrize("delta", [0, -1.0, float("nan"), "x", None])
def test_bad_delta(delta: object) -> None:
    with pytest.raises(ValueError, match="delta must be"):
        ordc(REAL, REAL_Y, SYN, SYN_Y, delta)  # type: ignore[arg-type]
    if delta in (0, -1.0):
        with pytest.raises(ValueError, match="use inf for no filtering"):
            ordc(REAL, REAL_Y, SYN, SYN_Y, delta)  # type: ignore[arg-type]


def test_nan_rows_are_named() -> None:
    bad = SYN.copy()
    bad[[2, 5], 1] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"synthetic_embeddings: 2 of 8 rows .*rows 2, 5"):
        ordc(REAL, REAL_Y, bad, SYN_Y, 1.0)
    real = REAL.copy()
    real[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"real_embeddings: 1 of 7 rows"):
        ordc(real, REAL_Y, SYN, SYN_Y, 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((REAL, REAL_Y[:-1], SYN, SYN_Y), "real_labels has 6 labels but real_embeddings has 7"),
        ((REAL, REAL_Y, SYN, SYN_Y[:3]), "synthetic_labels has 3 labels"),
        ((REAL, REAL_Y, SYN[:, :1], SYN_Y), "dim 2 but synthetic_embeddings have dim 1"),
        ((REAL[0], REAL_Y, SYN, SYN_Y), r"expected a 2-D array .* got shape \(2,\)"),
        ((REAL, REAL_Y, SYN.astype(str), SYN_Y), "expected a numeric 2-D array"),
        ((REAL, np.array([REAL_Y]), SYN, SYN_Y), "expected a 1-D sequence"),
        ((REAL, list(range(7)), SYN, SYN_Y), "one comparable type"),
    ],
)
def test_bad_inputs(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ordc(*args, 1.0)


# ------------------------------------------------------------------------------ shrinkage

# "wide": 6 points at distance 2 from (0, 0); "wider": 6 at distance 4 from (100, 0);
# "pair": 2 points, (0, 50) and (2, 50): centroid (1, 50), raw radius 1; "one": a single image.
RING = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 0], [-1, 0]], np.float64)
SHRINK_REAL = np.vstack([2 * RING, 4 * RING + [100, 0], [[0, 50], [2, 50]], [[50, -50]]])
SHRINK_Y = ["wide"] * 6 + ["wider"] * 6 + ["pair"] * 2 + ["one"]


def test_radius_prior_shrinks_a_two_image_class_toward_the_pool() -> None:
    """r_pool = median(2, 4) = 3 (classes with >= 5 images); k0 = 4:
    pair (2 * 1 + 4 * 3) / 6 = 7/3, wide (6 * 2 + 12) / 10 = 2.4, wider (24 + 12) / 10 = 3.6."""
    syn, y = [[3, 50], [1, 53.5]], ["pair", "pair"]  # distances 2 and 3.5 from (1, 50)
    with pytest.warns(RuntimeWarning, match="fallback radius 3 "):
        raw = ordc(SHRINK_REAL, SHRINK_Y, syn, y, 1.5)
    assert raw.radius_prior == 0 and raw.pooled_radius == pytest.approx(3.0)
    np.testing.assert_allclose(raw.radius, [3.0, 1.0, 2.0, 4.0])  # one, pair, wide, wider
    assert raw.keep.tolist() == [False, False]  # ratio 2 and 3.5 against r = 1
    with pytest.warns(RuntimeWarning):
        res = ordc(SHRINK_REAL, SHRINK_Y, syn, y, 1.5, radius_prior=4)
    assert res.classes.tolist() == ["one", "pair", "wide", "wider"]
    np.testing.assert_allclose(res.radius, [3.0, 7 / 3, 2.4, 3.6])
    np.testing.assert_allclose(res.raw_radius, [0.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(res.ratio, [2 / (7 / 3), 3.5 / (7 / 3)])  # 0.857, 1.5
    assert res.keep.tolist() == [True, True]  # the second exactly on the boundary
    assert res.class_fallback.tolist() == [True, False, False, False]
    assert res.class_table()[1] | {"radius": None} == {
        "class": "pair", "n_real": 2, "radius": None, "raw_radius": 1.0, "fallback": False}  # fmt: skip


def test_more_prior_moves_further_and_zero_is_the_paper() -> None:
    radii = []
    for k0 in (0, 1, 4, 100, 1e9):
        with pytest.warns(RuntimeWarning):
            radii.append(ordc(SHRINK_REAL, SHRINK_Y, [[1, 50]], ["pair"], 1.0,
                              radius_prior=k0).radius[1])  # fmt: skip
    assert radii[0] == 1.0 and all(a < b for a, b in itertools.pairwise(radii))
    assert radii[-1] == pytest.approx(3.0)


def test_the_pool_falls_back_to_every_positive_radius() -> None:
    """No class has 7 images: r_pool is the median over all positive radii, (1, 2, 4) -> 2,
    and the single-image class's fallback is that same pooled radius."""
    with pytest.warns(RuntimeWarning, match="fallback radius 2 "):
        res = ordc(SHRINK_REAL, SHRINK_Y, [[1, 50]], ["pair"], 1.0, radius_prior=2,
                   radius_pool_min=7)  # fmt: skip
    assert res.pooled_radius == pytest.approx(2.0) and res.fallback_radius == pytest.approx(2.0)
    np.testing.assert_allclose(res.radius, [2.0, (2 * 1 + 2 * 2) / 4, 2.0, (24 + 4) / 8])


def test_the_pool_ignores_small_classes() -> None:
    """With pool_min 2 the pair counts too: median(1, 2, 4) = 2; with 5 it does not: 3."""
    for pool_min, pooled in ((2, 2.0), (5, 3.0)):
        with pytest.warns(RuntimeWarning):
            res = ordc(SHRINK_REAL, SHRINK_Y, [], [], 1.0, radius_pool_min=pool_min)
        assert res.pooled_radius == pytest.approx(pooled)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"radius_prior": -1}, "radius_prior must be a finite number >= 0"),
        ({"radius_prior": math.inf}, "radius_prior must be a finite number >= 0"),
        ({"radius_pool_min": 0}, "radius_pool_min must be an integer >= 1"),
        ({"radius_pool_min": 2.5}, "radius_pool_min must be an integer >= 1"),
    ],
)
def test_bad_shrinkage_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ordc(REAL, REAL_Y, SYN, SYN_Y, 1.0, **kwargs)

"""Diversity control: greedy near-duplicate removal, against real images, by class or not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from atlantis.filtering.diversity import NEAR_DUPLICATE, NEAR_DUPLICATE_REAL, diversity_keep


def unit(*degrees: float) -> np.ndarray:
    """2-D unit vectors at the given angles: cosine similarity = cos(angle difference)."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_exact_copy_is_dropped_and_names_the_first() -> None:
    x = unit(0, 90, 0, 180)
    res = diversity_keep(x, ["a"] * 4, 0.95)
    assert res.keep.tolist() == [True, True, False, True]
    assert res.duplicate_of.tolist() == [-1, -1, 0, -1]
    assert res.reason(2) == NEAR_DUPLICATE and res.reason(0) is None
    assert res.similarity[2] == pytest.approx(1.0) and np.isnan(res.similarity[0])


def test_chain_keeps_both_ends() -> None:
    # 0 ~ 10 ~ 20 degrees at threshold cos(12 deg); 0 and 20 are not duplicates of each other.
    threshold = math.cos(math.radians(12))
    res = diversity_keep(unit(0, 10, 20), ["a"] * 3, threshold)
    assert res.keep.tolist() == [True, False, True]
    assert res.duplicate_of.tolist() == [-1, 0, -1]


def test_the_most_similar_kept_image_is_named() -> None:
    res = diversity_keep(unit(0, 8, 5), ["a"] * 3, math.cos(math.radians(10)))
    assert res.keep.tolist() == [True, False, False]
    assert res.duplicate_of.tolist() == [-1, 0, 0]  # row 1 is dropped, so row 2 cites row 0


def test_row_order_decides_which_copy_survives() -> None:
    res = diversity_keep(unit(90, 0, 0), ["a"] * 3, 0.99)
    assert res.keep.tolist() == [True, True, False] and res.duplicate_of[2] == 1


def test_many_copies_beyond_the_first_neighbour_batch() -> None:
    x = np.repeat(unit(30), 40, axis=0)  # more copies than the first k=16 neighbours
    res = diversity_keep(np.concatenate([x, unit(120)]), ["a"] * 41, 0.95)
    assert res.keep.tolist() == [True] + [False] * 39 + [True]
    assert (res.duplicate_of[1:40] == 0).all()


def test_copies_of_real_images() -> None:
    res = diversity_keep(unit(0, 45, 90), ["a", "a", "b"], 0.99,
                         real_embeddings=unit(45, 90, 0), real_labels=["a", "a", "a"])  # fmt: skip
    # Row 0 copies real 2, row 1 copies real 0; row 2 (label b) has no real image of b.
    assert res.keep.tolist() == [False, False, True]
    assert res.of_real.tolist() == [True, True, False]
    assert res.duplicate_of.tolist() == [2, 0, -1]
    assert res.reason(0) == NEAR_DUPLICATE_REAL


def test_scope_all_crosses_labels() -> None:
    x = unit(0, 0)
    assert diversity_keep(x, ["a", "b"], 0.99).keep.tolist() == [True, True]
    assert diversity_keep(x, ["a", "b"], 0.99, scope="all").keep.tolist() == [True, False]
    res = diversity_keep(x, None, 0.99, real_embeddings=unit(0), scope="all")
    assert res.keep.tolist() == [False, False] and res.of_real.all()


def test_real_copies_do_not_anchor_synthetic_duplicates() -> None:
    # Row 0 is a copy of a real image (dropped); row 1 copies row 0 and is dropped too, as a
    # copy of the real image, not of the dropped row.
    res = diversity_keep(unit(0, 0), ["a", "a"], 0.99, real_embeddings=unit(0),
                         real_labels=["a"])  # fmt: skip
    assert res.keep.tolist() == [False, False] and res.of_real.all()


def test_threshold_one_means_exact_copies() -> None:
    res = diversity_keep(unit(0, 0, 0.5), ["a"] * 3, 1.0)
    assert res.keep.tolist() == [True, False, True]


def test_empty_and_single() -> None:
    assert diversity_keep(np.zeros((0, 4)), [], 0.9).keep.shape == (0,)
    assert diversity_keep([], [], 0.9).keep.shape == (0,)
    assert diversity_keep(unit(0), ["a"], 0.9, real_embeddings=unit(90),
                          real_labels=["a"]).keep.tolist() == [True]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.0}, r"threshold must be a cosine similarity in \(0, 1\]"),
        ({"threshold": 1.5}, "threshold must be"),
        ({"scope": "everything"}, "scope must be"),
        ({"labels": None}, "scope='class' needs labels"),
        ({"real_embeddings": unit(0)}, "needs labels"),
        ({"labels": ["a"]}, "labels has 1 labels but embeddings has 2"),
        ({"real_embeddings": np.zeros((1, 3)), "real_labels": ["a"]}, "dim 3 but"),
        ({"embeddings": np.array([[np.nan, 0.0], [1.0, 0.0]])}, "1 of 2 rows contain NaN"),
    ],
)
def test_bad_inputs(kwargs: dict, message: str) -> None:
    args = {"embeddings": unit(0, 1), "labels": ["a", "a"], "threshold": 0.9} | kwargs
    with pytest.raises(ValueError, match=message):
        diversity_keep(**args)


def test_auto_threshold_is_how_close_distinct_real_images_get() -> None:
    from atlantis.filtering.diversity import AUTO_FALLBACK, auto_threshold

    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 16))
    # 200 distinct images, all close to one direction (like one backbone's features)
    real = base + 0.05 * rng.normal(size=(200, 16))
    unit = real / np.linalg.norm(real, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -1)
    nearest = sims.max(axis=1)
    t = auto_threshold(real)
    assert t == pytest.approx(np.quantile(nearest, 0.99), abs=1e-5)
    assert 0.99 < t < 1.0  # far above the fixed 0.95 that would call them all duplicates
    assert auto_threshold(real[:1]) == AUTO_FALLBACK
    # a synthetic copy of a real image (tiny noise) is above it; a new image is not
    copy = real[:1] + 1e-5 * rng.normal(size=(1, 16))
    far = rng.normal(size=(1, 16))
    res = diversity_keep(np.vstack([copy, far]), ["a", "a"], t, real_embeddings=real,
                         real_labels=["a"] * len(real))  # fmt: skip
    assert res.keep.tolist() == [False, True]

"""Distances: each block formula against a direct float64 numpy formula, plus registry errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlantis.evaluation.distances import DISTANCES, get_distance, pairwise_distances


def numpy_distances(x: np.ndarray, y: np.ndarray, name: str, c: float = 0.1) -> np.ndarray:
    """Textbook formulas in float64, written independently of the torch code."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    diff_sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    if name == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        yn = y / np.linalg.norm(y, axis=1, keepdims=True)
        return 1.0 - xn @ yn.T
    if name == "euclidean":
        return np.sqrt(diff_sq)
    denom = (1 - c * (x**2).sum(1))[:, None] * (1 - c * (y**2).sum(1))[None, :]
    return np.arccosh(1 + 2 * c * diff_sq / denom) / np.sqrt(c)


@pytest.mark.parametrize("name", ["cosine", "euclidean", "poincare"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_matches_numpy_formula(name: str, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)) * 0.4, rng.normal(size=(30, 6)) * 0.4  # inside c=0.1 ball
    got = pairwise_distances(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype), name)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    np.testing.assert_allclose(got.double().numpy(), numpy_distances(x, y, name), atol=tol)


def test_poincare_uses_curvature() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 4)) * 0.2
    got = pairwise_distances(torch.tensor(x), torch.tensor(x), "poincare", curvature=1.0)
    np.testing.assert_allclose(got.numpy(), numpy_distances(x, x, "poincare", c=1.0), atol=1e-6)
    assert get_distance("poincare", curvature=0.5).curvature == 0.5  # type: ignore[attr-defined]


def test_self_distance_is_zero_and_zero_vector_is_cosine_one() -> None:
    x = torch.tensor([[0.3, -0.2], [0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    for name in ("euclidean", "poincare"):
        d = pairwise_distances(x[[0, 1]], x[[0, 1]], name)
        assert torch.allclose(d.diagonal(), torch.zeros(2, dtype=torch.float64), atol=1e-7)
    cos = pairwise_distances(x, x, "cosine")
    assert cos[1].tolist() == [1.0, 1.0, 1.0]
    assert abs(cos[0, 0].item()) < 1e-12


def test_registry_and_unknown_name() -> None:
    assert set(DISTANCES) == {"cosine", "euclidean", "poincare"}
    with pytest.raises(ValueError, match=r"valid names are: cosine, euclidean, poincare"):
        get_distance("manhattan")


def test_poincare_rejects_points_outside_ball_and_bad_curvature() -> None:
    x = torch.tensor([[0.1, 0.0], [4.0, 0.0], [0.0, 3.2]])  # c*||x||^2 = 1.6 and 1.024
    with pytest.raises(ValueError, match=r"2 rows are not, first rows: \[1, 2\]"):
        pairwise_distances(x, x, "poincare")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="curvature"):
            get_distance("poincare", curvature=bad)

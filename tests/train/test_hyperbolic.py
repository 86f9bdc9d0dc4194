"""Poincaré-ball maths against closed forms, Möbius identities and the evaluation distance."""

from __future__ import annotations

import math

import pytest
import torch

from atlantis.evaluation.distances import pairwise_distances
from atlantis.train.hyperbolic import (
    ToPoincare,
    artanh,
    clip_features,
    dist,
    dist0,
    dist_matrix,
    expmap0,
    mobius_add,
    project,
)

C_VALUES = [0.1, 1.0, 2.5]


def ball_points(n: int, d: int, c: float, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return expmap0(torch.randn(n, d, generator=g, dtype=torch.float64) * scale, c)


@pytest.mark.parametrize("c", C_VALUES)
def test_distance_to_origin_closed_form(c: float) -> None:
    x = ball_points(6, 5, c)
    expected = 2 / math.sqrt(c) * torch.atanh(math.sqrt(c) * x.norm(dim=-1))
    zero = torch.zeros_like(x)
    torch.testing.assert_close(dist(zero, x, c), expected)
    torch.testing.assert_close(dist0(x, c), expected)
    torch.testing.assert_close(dist_matrix(zero[:1], x, c)[0], expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("c", C_VALUES)
def test_one_dimensional_distance_is_difference_of_artanh(c: float) -> None:
    # On a line through the origin d(a, b) = 2/sqrt(c) |artanh(sqrt(c) b) - artanh(sqrt(c) a)|.
    r = 1 / math.sqrt(c)
    a = torch.tensor([[-0.5 * r], [0.1 * r], [0.7 * r]], dtype=torch.float64)
    b = torch.tensor([[0.3 * r], [-0.6 * r], [0.2 * r]], dtype=torch.float64)
    sc = math.sqrt(c)
    expected = 2 / sc * (torch.atanh(sc * b) - torch.atanh(sc * a)).abs().squeeze(1)
    torch.testing.assert_close(dist(a, b, c), expected)


@pytest.mark.parametrize("c", C_VALUES)
def test_orthogonal_points(c: float) -> None:
    # For x ⟂ y: cosh(sqrt(c) d) = 1 + 2c(|x|^2 + |y|^2) / ((1 - c|x|^2)(1 - c|y|^2)).
    r = 1 / math.sqrt(c)
    x = torch.tensor([[0.4 * r, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.7 * r]], dtype=torch.float64)
    nx, ny = (x * x).sum(), (y * y).sum()
    expected = torch.acosh(1 + 2 * c * (nx + ny) / ((1 - c * nx) * (1 - c * ny))) / math.sqrt(c)
    torch.testing.assert_close(dist(x, y, c)[0], expected)
    torch.testing.assert_close(dist_matrix(x, y, c)[0, 0], expected)


@pytest.mark.parametrize("c", C_VALUES)
def test_mobius_identities(c: float) -> None:
    x, y = ball_points(4, 3, c, seed=1), ball_points(4, 3, c, seed=2)
    zero = torch.zeros_like(x)
    torch.testing.assert_close(mobius_add(zero, x, c), x)
    torch.testing.assert_close(mobius_add(x, zero, c), x)
    torch.testing.assert_close(mobius_add(-x, x, c), zero, atol=1e-12, rtol=0)
    # left cancellation: (-x) ⊕ (x ⊕ y) = y
    torch.testing.assert_close(mobius_add(-x, mobius_add(x, y, c), c), y)
    # the distance is symmetric and invariant under left Möbius translation
    z = ball_points(4, 3, c, seed=3, scale=0.3)
    torch.testing.assert_close(dist(x, y, c), dist(y, x, c))
    torch.testing.assert_close(dist(mobius_add(z, x, c), mobius_add(z, y, c), c), dist(x, y, c))


def test_expmap0_of_small_vectors_is_almost_identity() -> None:
    v = torch.randn(5, 8, dtype=torch.float64) * 1e-4
    torch.testing.assert_close(expmap0(v, 0.1), v, atol=1e-12, rtol=1e-7)
    # ... and of zero is zero, with a finite gradient
    zero = torch.zeros(2, 3, requires_grad=True)
    out = expmap0(zero, 0.1)
    out.sum().backward()
    assert torch.equal(out, torch.zeros(2, 3)) and torch.isfinite(zero.grad).all()


def test_expmap0_lands_inside_the_ball_and_project_keeps_it_there() -> None:
    c = 0.1
    v = torch.randn(100, 16) * 50
    x = project(expmap0(v, c), c)
    assert (x.norm(dim=-1) < 1 / math.sqrt(c)).all()
    inside = ball_points(3, 4, c).float()
    torch.testing.assert_close(project(inside, c), inside)


@pytest.mark.parametrize("c", [0.1, 1.0])
def test_dist_matrix_matches_pairwise_and_the_evaluation_distance(c: float) -> None:
    # scale 0.5: no point so close to the boundary that the artanh clamp kicks in
    x, y = ball_points(7, 6, c, seed=4, scale=0.5), ball_points(5, 6, c, seed=5, scale=0.5)
    mine = dist_matrix(x, y, c)
    torch.testing.assert_close(mine, dist(x[:, None], y[None], c), atol=1e-6, rtol=1e-6)
    evaluation = pairwise_distances(x, y, "poincare", curvature=c)
    torch.testing.assert_close(mine, evaluation, atol=1e-6, rtol=1e-6)


def test_float32_agrees_with_the_evaluation_distance_within_the_head_radius() -> None:
    head = ToPoincare(c=0.1, clip_r=2.3)
    x = head(torch.randn(64, 32) * 10)
    ours = dist_matrix(x, x, 0.1)
    reference = pairwise_distances(x.double(), x.double(), "poincare", curvature=0.1)
    torch.testing.assert_close(ours.double(), reference, atol=2e-4, rtol=1e-4)


def test_gradients_are_finite_at_the_diagonal_and_near_the_boundary() -> None:
    v = (torch.randn(10, 4) * 100).requires_grad_()
    x = ToPoincare(c=1.0, clip_r=None)(v)  # points pressed against the boundary
    d = dist_matrix(x, x, 1.0)
    d.sum().backward()
    assert torch.isfinite(d).all() and torch.isfinite(v.grad).all()
    assert d.diagonal().abs().max() < 1e-3


def test_clip_features_and_artanh_clamp() -> None:
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    clipped = clip_features(x, 1.0)
    torch.testing.assert_close(clipped.norm(dim=-1), torch.tensor([1.0, 0.5]), atol=1e-4, rtol=0)
    assert clip_features(x, None) is x
    assert torch.isfinite(artanh(torch.tensor([1.0, -1.0, 2.0]))).all()


def test_bad_curvature_is_refused() -> None:
    with pytest.raises(ValueError, match="curvature"):
        expmap0(torch.ones(1, 2), 0.0)
    with pytest.raises(ValueError, match="clip_r"):
        ToPoincare(0.1, clip_r=-1.0)

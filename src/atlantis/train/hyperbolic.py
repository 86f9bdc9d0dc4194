"""The Poincaré ball: the maths behind the hyperbolic embedding head and its distance.

Follows ``hyptorch.pmath`` (Khrulkov et al.), which hyp_metric (Ermolov et al., CVPR 2022)
and ATLANTIS train with: a Euclidean vector ``v`` is mapped onto the ball of curvature
``-c`` (radius ``1/sqrt(c)``) by the exponential map at the origin, and two points are
compared by the geodesic distance ``d(x, y) = 2/sqrt(c) * artanh(sqrt(c) * ||(-x) ⊕ y||)``,
where ``⊕`` is Möbius addition.

Why a separate implementation from ``atlantis.evaluation.distances``: evaluation ranks
millions of pairs by a cheap monotone key and never needs gradients; training needs the
distance itself, differentiable and safe near the boundary where ``artanh`` and the
``1 - c||x||^2`` factors blow up. The two are tested to agree.

Numerical safety, as in hyptorch: norms are clamped away from zero (``expmap0`` of 0 is 0
with a finite gradient), points are projected a hair inside the boundary, and ``artanh``
arguments are clamped below 1. ``dist_matrix`` gets ``||(-x) ⊕ y||`` from the pairwise
Euclidean distances instead of materialising the ``[n, m, d]`` tensor hyptorch builds, so
a 900-image batch needs ``[900, 900]`` floats, not ``[900, 900, 128]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: Smallest norm used as a divisor (hyptorch's ``clamp_min(1e-5)``).
MIN_NORM = 1e-5
#: Points are kept at most ``(1 - BALL_EPS) / sqrt(c)`` from the origin (hyptorch's value).
BALL_EPS = 1e-3
#: ``artanh`` arguments are clamped to ``1 - ARTANH_EPS``.
ARTANH_EPS = 1e-5


def _check_c(c: float) -> float:
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"curvature c must be a finite float > 0, got {c!r}")
    return float(c)


def artanh(x: Tensor) -> Tensor:
    """``artanh`` with its argument clamped inside (-1, 1), so it never returns inf."""
    x = x.clamp(-1 + ARTANH_EPS, 1 - ARTANH_EPS)
    return 0.5 * (torch.log1p(x) - torch.log1p(-x))


def clip_features(x: Tensor, clip_r: float | None) -> Tensor:
    """Scale rows of ``x`` longer than ``clip_r`` down to norm ``clip_r`` (feature clipping).

    Guo et al., "Clipped hyperbolic classifiers": without it, long Euclidean vectors land
    on the boundary of the ball, where gradients vanish. ``None`` disables clipping.
    """
    if clip_r is None:
        return x
    norm = x.norm(dim=-1, keepdim=True) + MIN_NORM
    return x * torch.clamp(clip_r / norm, max=1.0)


def project(x: Tensor, c: float) -> Tensor:
    """Pull points that lie (numerically) on or outside the ball just inside it."""
    c = _check_c(c)
    norm = x.norm(dim=-1, keepdim=True).clamp_min(MIN_NORM)
    max_norm = (1 - BALL_EPS) / math.sqrt(c)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def expmap0(v: Tensor, c: float) -> Tensor:
    """Exponential map at the origin: ``tanh(sqrt(c)||v||) v / (sqrt(c)||v||)``."""
    sqrt_c = math.sqrt(_check_c(c))
    norm = v.norm(dim=-1, keepdim=True).clamp_min(MIN_NORM)
    return torch.tanh(sqrt_c * norm) * v / (sqrt_c * norm)


def mobius_add(x: Tensor, y: Tensor, c: float) -> Tensor:
    """Möbius addition ``x ⊕ y`` (broadcasting over leading dimensions)."""
    c = _check_c(c)
    x2 = (x * x).sum(dim=-1, keepdim=True)
    y2 = (y * y).sum(dim=-1, keepdim=True)
    xy = (x * y).sum(dim=-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    denom = 1 + 2 * c * xy + c**2 * x2 * y2
    return num / denom.clamp_min(MIN_NORM)


def dist(x: Tensor, y: Tensor, c: float) -> Tensor:
    """Geodesic distance between matching rows of ``x`` and ``y`` (shape ``[...]``)."""
    sqrt_c = math.sqrt(_check_c(c))
    return 2 / sqrt_c * artanh(sqrt_c * mobius_add(-x, y, c).norm(dim=-1))


def dist0(x: Tensor, c: float) -> Tensor:
    """Distance of each row of ``x`` to the origin: ``2/sqrt(c) artanh(sqrt(c)||x||)``."""
    sqrt_c = math.sqrt(_check_c(c))
    return 2 / sqrt_c * artanh(sqrt_c * x.norm(dim=-1))


def dist_matrix(x: Tensor, y: Tensor, c: float) -> Tensor:
    """All pairwise geodesic distances ``[len(x), len(y)]``, differentiable.

    Uses ``c||(-x) ⊕ y||^2 = c||x-y||^2 / (c||x-y||^2 + (1 - c||x||^2)(1 - c||y||^2))`` (the
    same distance as hyptorch's, and as the arccosh form of ``atlantis.evaluation``), with
    ``||x - y||`` from ``torch.cdist`` computed directly rather than through the Gram matrix:
    no ``[n, m, d]`` tensor, and no cancellation for near-duplicates (in float32 the Gram
    route leaves ~1e-3 of noise on distances that should be 0).
    """
    c = _check_c(c)
    diff = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    fx = (1 - c * (x * x).sum(dim=-1, keepdim=True)).clamp_min(MIN_NORM)  # [n, 1]
    fy = (1 - c * (y * y).sum(dim=-1, keepdim=True)).clamp_min(MIN_NORM).T  # [1, m]
    scaled = math.sqrt(c) * diff
    t = scaled / torch.sqrt(scaled**2 + fx * fy)
    return 2 / math.sqrt(c) * artanh(t)


class ToPoincare(nn.Module):
    """Map Euclidean features onto the ball: clip, ``expmap0``, project (hyptorch's layer).

    hyp_metric uses it with ``riemannian=False``: gradients flow as plain Euclidean
    gradients through the map, which is what this layer does.
    """

    def __init__(self, c: float = 0.1, clip_r: float | None = 2.3) -> None:
        super().__init__()
        self.c = _check_c(c)
        if clip_r is not None and not clip_r > 0:
            raise ValueError(f"clip_r must be > 0 or None, got {clip_r!r}")
        self.clip_r = clip_r

    def forward(self, x: Tensor) -> Tensor:
        return project(expmap0(clip_features(x, self.clip_r), self.c), self.c)

    def extra_repr(self) -> str:
        return f"c={self.c}, clip_r={self.clip_r}"

"""Pairwise distances for exact retrieval, computed block by block on torch tensors.

A retrieval scan computes one *block* at a time: a chunk of queries against the whole gallery.
At SOP scale the blocks hold billions of entries in total, so every elementwise pass costs
real time. Each distance therefore splits into three steps:

* ``prepare`` runs once per set and caches what the blocks reuse (unit vectors, squared norms,
  Poincaré conformal weights);
* ``key_from_dot`` turns a block of dot products into a *ranking key* per (query, gallery)
  pair: smaller means closer, and it is a monotone function of the true distance within each
  query row, built with the fewest elementwise passes over the block (for cosine the key is
  the negated dot product). ``ranking_block`` is the GEMM followed by ``key_from_dot``;
* ``finalize`` turns the few selected keys (top-k per query) into true distances.

Ranking on the key instead of the distance is exact up to rounding: a per-row monotone map
never reorders two entries, it can only merge two keys that round to the same distance.
The one matrix product per block is :func:`matmul_nt` (numpy's OpenBLAS on CPU, see there).
Every key is a fixed elementwise formula of one dot product and per-row quantities
(``kernel_id`` names the formula), so the compiled rank counter of
:mod:`atlantis.evaluation.rank_count` computes bit-identical keys from the same dot block.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DISTANCES",
    "Distance",
    "Prepared",
    "get_distance",
    "matmul_nt",
    "pairwise_distances",
    "single_threaded_blas",
]

DEFAULT_CURVATURE = 0.1


@functools.cache
def _blas_controller() -> Any | None:
    """threadpoolctl's controller (a dependency of the project), if importable."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Pin numpy's BLAS to one thread while block scans run their own worker threads.

    Why: a scan computes many fixed-shape blocks in parallel worker threads (one BLAS call
    each); OpenBLAS's own pool on top would oversubscribe the cores and leave idle threads
    spinning on the cores the selection needs next. One thread per call also makes every
    block's rounding a function of its shape alone (see :mod:`atlantis.evaluation.blocks`).
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def matmul_nt(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b.T`` (into ``out`` if given): the GEMM of every distance block.

    On CPU, float32/float64 go through numpy's OpenBLAS in one call (callers parallelise
    over blocks and pin BLAS with :func:`single_threaded_blas`). Why numpy: torch's MKL
    SGEMM ran ~1.7x slower than OpenBLAS on the AMD EPYC machines this was tuned on, and the
    GEMM is most of an exact scan. On other devices, or with gradients, this is ``torch.mm``.
    """
    numpy_ok = a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64)
    if not numpy_ok or a.requires_grad or b.requires_grad:
        return torch.mm(a, b.T, out=out)
    if out is None:
        out = a.new_empty((a.shape[0], b.shape[0]))
    np.matmul(a.numpy(), b.numpy().T, out=out.numpy())
    return out


class Prepared(NamedTuple):
    """Per-set tensors a distance caches so that each block only needs one matrix product."""

    x: Tensor
    sq_norm: Tensor | None = None
    weight: Tensor | None = None


@dataclass(frozen=True)
class Distance:
    """One distance: ``prepare`` a set once, rank blocks by key, ``finalize`` selected keys."""

    name: str
    kernel_id: ClassVar[int]
    """Which key formula :mod:`atlantis.evaluation.rank_count` compiles for this distance."""

    def prepare(self, x: Tensor) -> Prepared:
        """Cache per-row quantities of ``x`` (shape [n, d]) reused by every block."""
        raise NotImplementedError

    def key_from_dot(self, dot: Tensor, q: Prepared, g: Prepared) -> Tensor:
        """Turn dot products [nq, ng] of prepared rows into ranking keys, in place.

        Smaller is closer, monotone in the distance per query row. The formula is fixed
        (same operations, same order) so that every code path computing a key from the
        same dot product gets the same float.
        """
        raise NotImplementedError

    def ranking_block(self, q: Prepared, g: Prepared, out: Tensor | None = None) -> Tensor:
        """Return ranking keys [nq, ng]: one GEMM, then :meth:`key_from_dot`.

        ``out`` (contiguous, [nq, ng]) lets a scan reuse one buffer for every block.
        """
        return self.key_from_dot(matmul_nt(q.x, g.x, out=out), q, g)

    def finalize(self, key: Tensor, q: Prepared) -> Tensor:
        """Map keys of shape [nq, m] (rows aligned with ``q``) to true distances."""
        raise NotImplementedError


@dataclass(frozen=True)
class Cosine(Distance):
    """Cosine distance ``1 - cos(x, y)``; zero vectors have distance 1 to everything."""

    name: str = "cosine"
    kernel_id: ClassVar[int] = 0

    def prepare(self, x: Tensor) -> Prepared:
        return Prepared(torch.nn.functional.normalize(x, dim=1))

    def key_from_dot(self, dot: Tensor, q: Prepared, g: Prepared) -> Tensor:
        return dot.neg_()

    def finalize(self, key: Tensor, q: Prepared) -> Tensor:
        return key + 1.0


@dataclass(frozen=True)
class Euclidean(Distance):
    """Euclidean (L2) distance ``||x - y||``."""

    name: str = "euclidean"
    kernel_id: ClassVar[int] = 1

    def prepare(self, x: Tensor) -> Prepared:
        return Prepared(x, sq_norm=(x * x).sum(dim=1))

    def key_from_dot(self, dot: Tensor, q: Prepared, g: Prepared) -> Tensor:
        # ||q||^2 is constant along a row, so it is left out of the key and added in finalize.
        # -(d + d) is -2d exactly: the compiled counter writes it the same way.
        assert g.sq_norm is not None
        return dot.add_(dot).neg_().add_(g.sq_norm.unsqueeze(0))

    def finalize(self, key: Tensor, q: Prepared) -> Tensor:
        assert q.sq_norm is not None
        return (key + q.sq_norm.unsqueeze(1)).clamp_min_(0.0).sqrt_()


@dataclass(frozen=True)
class Poincare(Distance):
    """Geodesic distance in the Poincaré ball of curvature ``-c``.

    ``d(x, y) = arccosh(1 + 2c||x-y||^2 / ((1 - c||x||^2)(1 - c||y||^2))) / sqrt(c)``.
    The key is ``||x-y||^2 / (1 - c||y||^2)``: the query's factor is constant along a row and
    arccosh is increasing, so the key ranks exactly like the distance.
    """

    name: str = "poincare"
    curvature: float = DEFAULT_CURVATURE
    kernel_id: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.curvature) and self.curvature > 0):
            raise ValueError(
                f"Poincaré curvature c must be a finite float > 0, got {self.curvature!r}"
            )

    def prepare(self, x: Tensor) -> Prepared:
        sq_norm = (x * x).sum(dim=1)
        outside = (self.curvature * sq_norm >= 1.0).nonzero().flatten()
        if outside.numel() > 0:
            first = outside[:5].tolist()
            raise ValueError(
                f"Poincaré distance needs every point inside the ball c*||x||^2 < 1 "
                f"(c={self.curvature}); {outside.numel()} rows are not, first rows: {first}"
            )
        return Prepared(x, sq_norm=sq_norm, weight=1.0 / (1.0 - self.curvature * sq_norm))

    def key_from_dot(self, dot: Tensor, q: Prepared, g: Prepared) -> Tensor:
        assert q.sq_norm is not None and g.sq_norm is not None and g.weight is not None
        key = dot.add_(dot).neg_().add_(g.sq_norm.unsqueeze(0))
        return key.add_(q.sq_norm.unsqueeze(1)).mul_(g.weight.unsqueeze(0))

    def finalize(self, key: Tensor, q: Prepared) -> Tensor:
        assert q.weight is not None
        c = self.curvature
        arg = 1.0 + 2.0 * c * key.clamp_min(0.0) * q.weight.unsqueeze(1)
        return torch.arccosh(arg) / math.sqrt(c)


DISTANCES: dict[str, Callable[..., Distance]] = {
    "cosine": lambda **_: Cosine(),
    "euclidean": lambda **_: Euclidean(),
    "poincare": lambda curvature=DEFAULT_CURVATURE, **_: Poincare(curvature=curvature),
}
"""Registry of distance names. Only ``poincare`` uses ``curvature``; the others ignore it."""


def get_distance(name: str | Distance, curvature: float = DEFAULT_CURVATURE) -> Distance:
    """Look up a distance by name (a ``Distance`` instance passes through unchanged)."""
    if isinstance(name, Distance):
        return name
    try:
        factory = DISTANCES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown distance {name!r}; valid names are: {', '.join(sorted(DISTANCES))}"
        ) from None
    return factory(curvature=curvature)


def pairwise_distances(
    x: Tensor,
    y: Tensor,
    distance: str | Distance = "cosine",
    curvature: float = DEFAULT_CURVATURE,
) -> Tensor:
    """Full distance matrix [len(x), len(y)] between two small sets (tests, debugging).

    The k-NN search never calls this on the whole gallery; it ranks blocks by key and only
    finalizes the selected neighbours.
    """
    dist = get_distance(distance, curvature)
    q = dist.prepare(x)
    return dist.finalize(dist.ranking_block(q, dist.prepare(y)), q)

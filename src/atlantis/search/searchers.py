"""Vector search structures: exact or approximate k-NN over the gallery's vectors.

faiss does the heavy lifting for the two geometries it knows: cosine (inner product on unit
vectors) and Euclidean (L2). Three kinds:

* ``flat``: exact brute force (``IndexFlatIP`` / ``IndexFlatL2``), the default: at 100k
  vectors of 128 dimensions one query is a few milliseconds, and exact means no recall to
  explain;
* ``hnsw``: a navigable graph (``IndexHNSWFlat``), fast on large galleries, slower to build;
* ``ivf``: inverted lists over k-means cells (``IndexIVFFlat``), quick to build, probes a
  share of the cells per query.

The Poincaré ball is not a faiss metric. Exact search there ranks every gallery vector by
the true distance, a block of queries at a time, with the prepared distance of
:mod:`atlantis.evaluation.distances` (one GEMM per block, the same key the evaluation ranks
by). An approximate Poincaré index asks an L2 faiss index over the same vectors for
``rerank`` times k candidates and orders them by the true distance.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from atlantis.errors import ConfigError

KINDS = ("flat", "ivf", "hnsw")
#: Working memory of one exact Poincaré block (queries x gallery keys), bytes.
BLOCK_BYTES = 128 << 20
DEFAULTS: dict[str, dict[str, int]] = {
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 128},
    "ivf": {"nprobe_share": 16, "min_nprobe": 8},  # probe 1/16 of the cells, 8 at least
    "poincare": {"rerank": 10},
}


def _faiss() -> Any:
    import faiss

    return faiss


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): cosine as an inner product."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class Searcher(ABC):
    """``search(queries [nq, d], k)`` -> (int64 indices, float32 true distances), nearest first.

    A row may hold fewer than ``k`` valid neighbours only for an approximate index that
    found fewer; its missing entries are index ``-1`` and distance ``inf``.
    """

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class FaissSearcher(Searcher):
    """A faiss index in cosine (inner product on unit rows) or Euclidean (L2) geometry."""

    def __init__(self, index: Any, metric: str, params: dict[str, int]) -> None:
        self.index = index
        self.metric = metric
        self.params = params

    def candidates(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw faiss output: inner products (cosine) or squared L2, and indices."""
        q = unit_rows(queries) if self.metric == "cosine" else np.ascontiguousarray(queries)
        if "efSearch" in self.params:
            self.index.hnsw.efSearch = max(self.params["efSearch"], k)
        if "nprobe" in self.params:
            self.index.nprobe = self.params["nprobe"]
        return self.index.search(np.ascontiguousarray(q, dtype=np.float32), k)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raw, idx = self.candidates(queries, k)
        dist = 1.0 - raw if self.metric == "cosine" else np.sqrt(np.maximum(raw, 0.0))
        dist = np.where(idx < 0, np.inf, dist).astype(np.float32)
        return idx.astype(np.int64), dist


class PoincareExact(Searcher):
    """Every gallery vector ranked by the true Poincaré distance, in memory-bounded blocks.

    Per block: one GEMM, then the ranking key of :class:`atlantis.evaluation.distances.
    Poincare` (``||q-g||^2 / (1 - c||g||^2)``, monotone in the distance along a query row),
    in place in numpy; only the k selected keys become distances. numpy rather than torch
    here because a single query is a [1, N] block, where torch's per-op threading overhead
    cost 5x the GEMM itself (8 ms against 1.5 ms at 100k).
    """

    def __init__(self, vectors: np.ndarray, curvature: float) -> None:
        self.c = float(curvature)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.sq_norm = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self.weight = _ball_weight(self.sq_norm, self.c, "gallery")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        q_sq = np.einsum("ij,ij->i", q, q)
        _ball_weight(q_sq, self.c, "queries")  # refuses rows outside the ball
        rows = max(1, BLOCK_BYTES // (4 * max(len(self.vectors), 1)))
        out_idx, out_dist = [], []
        for s in range(0, len(q), rows):
            key = q[s : s + rows] @ self.vectors.T
            key *= -2.0
            key += self.sq_norm
            key += q_sq[s : s + rows, None]
            key *= self.weight
            idx, _ = _smallest(key, k)
            # The GEMM key ranks well but cancels to ~1e-6 for near points, which arccosh
            # turns into ~1e-3: the k found are re-measured from their differences.
            dist = ball_distance(q[s : s + rows], self.vectors[idx], self.c)
            order = np.argsort(dist, axis=1, kind="stable")
            out_idx.append(np.take_along_axis(idx, order, axis=1))
            out_dist.append(np.take_along_axis(dist, order, axis=1).astype(np.float32))
        return np.concatenate(out_idx).astype(np.int64), np.concatenate(out_dist)


def ball_distance(q: np.ndarray, g: np.ndarray, c: float) -> np.ndarray:
    """Poincaré distance of each query ``q[i]`` to its rows ``g[i, j]`` ([nq, d], [nq, m, d]).

    From the differences in float64, and ``arccosh(1 + x)`` as ``log1p(x + sqrt(x (x + 2)))``,
    so an image's own copy measures ~0 instead of arccosh's float32 floor (~1e-3).
    """
    q64, g64 = q.astype(np.float64), g.astype(np.float64)
    diff = g64 - q64[:, None, :]
    sq = np.einsum("ijk,ijk->ij", diff, diff)
    wq = 1.0 / (1.0 - c * np.einsum("ij,ij->i", q64, q64))
    wg = 1.0 / (1.0 - c * np.einsum("ijk,ijk->ij", g64, g64))
    x = 2.0 * c * sq * wq[:, None] * wg
    return np.log1p(x + np.sqrt(x * (x + 2.0))) / math.sqrt(c)


def _ball_weight(sq_norm: np.ndarray, c: float, name: str) -> np.ndarray:
    """``1 / (1 - c||x||^2)``, or a ValueError naming the rows outside the ball."""
    outside = np.flatnonzero(c * sq_norm >= 1.0)
    if outside.size:
        raise ValueError(
            f"{name}: Poincaré search needs every vector inside the ball c*||x||^2 < 1 "
            f"(c={c}); {outside.size} rows are not, first rows: {outside[:5].tolist()}"
        )
    return (1.0 / (1.0 - c * sq_norm)).astype(np.float32)


def _smallest(key: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k smallest keys per row, ascending."""
    if len(key) >= 16:  # torch.topk beats argpartition on many rows; not on one
        import torch

        vals, idx = torch.topk(torch.from_numpy(key), k, dim=1, largest=False, sorted=True)
        return idx.numpy(), vals.numpy()
    part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < key.shape[1] else (
        np.broadcast_to(np.arange(key.shape[1]), key.shape))  # fmt: skip
    vals = np.take_along_axis(key, part, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


class PoincareRerank(Searcher):
    """Candidates from an L2 faiss index over the ball's vectors, ordered by true distance."""

    def __init__(self, candidates: FaissSearcher, vectors: np.ndarray, curvature: float,
                 rerank: int) -> None:  # fmt: skip
        self.candidates = candidates
        self.vectors = vectors
        self.c = float(curvature)
        self.rerank = rerank
        self.weight = _ball_weight(np.einsum("ij,ij->i", vectors, vectors), self.c, "gallery")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, np.float32)
        m = min(len(self.vectors), self.rerank * k)
        _, cand = self.candidates.candidates(q, m)
        safe = np.where(cand < 0, 0, cand)
        _ball_weight(np.einsum("ij,ij->i", q, q), self.c, "queries")  # refuses rows outside
        dist = np.where(cand < 0, np.inf, ball_distance(q, self.vectors[safe], self.c))
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        idx = np.take_along_axis(cand, order, axis=1)
        return idx.astype(np.int64), np.take_along_axis(dist, order, axis=1).astype(np.float32)


def build_faiss(vectors: np.ndarray, metric: str, kind: str) -> tuple[Any, dict[str, int]]:
    """A trained, filled faiss index of ``kind`` over ``vectors`` and its search parameters."""
    faiss = _faiss()
    n, d = vectors.shape
    x = unit_rows(vectors) if metric == "cosine" else np.ascontiguousarray(vectors, np.float32)
    fmetric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    params: dict[str, int] = {}
    if kind == "flat":
        index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    elif kind == "hnsw":
        p = DEFAULTS["hnsw"]
        index = faiss.IndexHNSWFlat(d, p["M"], fmetric)
        index.hnsw.efConstruction = p["efConstruction"]
        params = {"M": p["M"], "efSearch": p["efSearch"]}
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))  # faiss wants >= 39 points a cell
        quantizer = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, fmetric)
        index.cp.seed = 0
        index.train(x)
        share = nlist // DEFAULTS["ivf"]["nprobe_share"]
        params = {"nlist": nlist, "nprobe": max(min(nlist, DEFAULTS["ivf"]["min_nprobe"]), share)}
    else:
        raise ConfigError(f"unknown index kind {kind!r}; valid: {', '.join(KINDS)}")
    index.add(x)
    return index, params


def make_searcher(vectors: np.ndarray, metric: str, kind: str, curvature: float | None,
                  index: Any = None, params: dict[str, int] | None = None,
                  ) -> tuple[Searcher, Any, dict[str, int]]:  # fmt: skip
    """The searcher of ``metric``/``kind`` over ``vectors``: built, or around a loaded index.

    Returns (searcher, the faiss index to store or None, the parameters to record).
    """
    if metric == "poincare" and kind == "flat":
        return PoincareExact(vectors, float(curvature or 0.1)), None, {}
    faiss_metric = "euclidean" if metric == "poincare" else metric
    if index is None:
        index, params = build_faiss(vectors, faiss_metric, kind)
    params = dict(params or {})
    searcher: Searcher = FaissSearcher(index, faiss_metric, params)
    if metric == "poincare":
        params.setdefault("rerank", DEFAULTS["poincare"]["rerank"])
        searcher = PoincareRerank(searcher, vectors, float(curvature or 0.1), params["rerank"])
    return searcher, index, params


def recall_at_10(approx: Searcher, exact: Searcher, vectors: np.ndarray, sample: int = 1000,
                 seed: int = 0) -> tuple[float, int]:  # fmt: skip
    """Share of the exact top-10 the approximate index returns, over sampled gallery vectors.

    Gallery vectors as queries: what users search for looks like what the gallery holds.
    Returns (recall, number of queries).
    """
    n = len(vectors)
    k = min(10, n)
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    queries = vectors[np.sort(rows)]
    got, _ = approx.search(queries, k)
    want, _ = exact.search(queries, k)
    found = sum(len(set(g.tolist()) & set(w.tolist())) for g, w in zip(got, want, strict=True))
    return found / (k * len(rows)), len(rows)

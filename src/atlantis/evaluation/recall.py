"""Exact retrieval metrics: Recall@K, per-class R@1 and MAP@R, leave-one-out on one set.

Recall@K follows the ATLANTIS supplement (section A): every image of the evaluated set is a
query, its K nearest neighbours are searched among the *other* images of the same set, the
query scores a hit if any of them has its label, and R@K is the mean over all queries (a
fraction in [0, 1]). A query whose class has no other image can never hit: it counts as a
miss for R@K (the definition averages over every query) but is skipped by MAP@R, whose
per-query value is undefined for it. (pytorch-metric-learning skips such queries for every
metric, so its precision_at_1 matches our R@1 only when no class is a singleton.)

MAP@R follows Musgrave et al., "A Metric Learning Reality Check" (2020): for a query with
R >= 1 other same-label items, AP@R = (1/R) * sum_{i=1..R} P(i) * rel(i) over its top-R
neighbours, where P(i) is the precision of the top-i; MAP@R is the mean over those queries.

Both metrics need, per query, only the ranks of its same-label items: a query hits at K
exactly when fewer than K other items precede its nearest positive. The default method
(``method="count"`` on the CPU, :mod:`atlantis.evaluation.rank_count`) counts those items
in one pass over a symmetric block grid instead of selecting every query's top K; the
top-K scan (``method="topk"``, :mod:`atlantis.evaluation.knn`) is the reference and the
path for GPUs. Both read the same canonical blocks, laid over the items sorted by label,
so they rank by the same floats and give identical Recall@K (MAP@R to float64 rounding of
its sum). Ties in the neighbour order go to the lower item index, as in the k-NN search.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from atlantis.evaluation import blocks
from atlantis.evaluation.blocks import BlockGrid
from atlantis.evaluation.distances import DEFAULT_CURVATURE, get_distance
from atlantis.evaluation.knn import (
    DEFAULT_MEMORY_BUDGET,
    as_embeddings,
    query_chunk_size,
    scan_grid,
)

__all__ = [
    "DEFAULT_KS",
    "SOP_KS",
    "RetrievalMetrics",
    "default_ks",
    "evaluate_retrieval",
    "recall_at_k",
]

DEFAULT_KS: tuple[int, ...] = (1, 2, 4, 8)
"""Recall@K cut-offs reported for CUB-200, Cars-196 and similar few-class benchmarks."""

SOP_KS: tuple[int, ...] = (1, 10, 100, 1000)
"""Cut-offs reported for Stanford Online Products (many classes of a few images each)."""


def default_ks(num_images: int, num_classes: int) -> tuple[int, ...]:
    """Pick the conventional cut-offs: SOP's for SOP-like sets, else (1, 2, 4, 8).

    SOP-like means many small classes (fewer than 10 images per class on average) in a set
    of more than 1000 images: there R@1..8 saturates slowly and the literature reports
    R@1/10/100/1000, which only make sense once the set is that large.
    """
    if num_images <= 0 or num_classes <= 0:
        raise ValueError(f"need positive counts, got {num_images} images, {num_classes} classes")
    return SOP_KS if num_images > 1000 and num_images / num_classes < 10 else DEFAULT_KS


@dataclass(frozen=True)
class RetrievalMetrics:
    """Result of :func:`evaluate_retrieval`; fractions in [0, 1], labels as given."""

    recall: dict[int, float]
    map_at_r: float
    per_class_r1: dict[Any, float]
    num_queries: int
    num_classes: int
    distance: str
    num_map_at_r_queries: int
    """Queries with at least one other same-label item: the ones MAP@R averages over."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"R@1": ..., "MAP@R": ..., "per_class_R@1": {...}, ...}``.

        Label keys become strings (JSON object keys must be) and an undefined MAP@R (no
        query with a same-label partner) becomes ``None`` rather than a non-JSON NaN.
        """
        out: dict[str, Any] = {f"R@{k}": v for k, v in self.recall.items()}
        out["MAP@R"] = None if math.isnan(self.map_at_r) else self.map_at_r
        out["per_class_R@1"] = {str(label): v for label, v in self.per_class_r1.items()}
        out["num_queries"] = self.num_queries
        out["num_classes"] = self.num_classes
        out["num_map_at_r_queries"] = self.num_map_at_r_queries
        out["distance"] = self.distance
        return out


def _encode_labels(labels: Any, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and return (int64 class code per item, class labels by code)."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels: expected a 1-D sequence, got shape {arr.shape}")
    if len(arr) != num_items:
        raise ValueError(
            f"labels: expected one label per embedding row ({num_items}), got {len(arr)}"
        )
    if arr.dtype == object:  # e.g. a pandas column of str: accept all-str or all-int
        if all(isinstance(v, str) for v in arr):
            arr = arr.astype(str)
        elif all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in arr):
            arr = arr.astype(np.int64)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("labels: float labels must be finite (NaN never equals itself)")
    if arr.dtype.kind not in "biufUS":
        raise ValueError(f"labels: expected ints or strings, got dtype {arr.dtype}")
    classes, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), classes


def _validate_ks(ks: int | Iterable[int], num_items: int) -> tuple[int, ...]:
    """Return sorted unique cut-offs; K beyond the N-1 other items warns (see recall_at_k)."""
    ks_list = [ks] if isinstance(ks, numbers.Integral) else list(ks)
    if not ks_list or not all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1 for k in ks_list
    ):
        raise ValueError(f"ks: expected one or more positive ints, got {ks!r}")
    out = tuple(sorted({int(k) for k in ks_list}))
    too_big = [k for k in out if k > num_items - 1]
    if too_big:
        warnings.warn(
            f"K={too_big} exceed the {num_items - 1} other items of the set; they are "
            f"evaluated with all {num_items - 1} others as neighbours (the exact value).",
            UserWarning,
            stacklevel=4,  # the caller of recall_at_k / evaluate_retrieval
        )
    return out


Method = Literal["auto", "count", "topk"]
METHODS: tuple[str, ...] = ("auto", "count", "topk")


def _label_grid(emb: torch.Tensor, codes: np.ndarray, distance: str, knn_kwargs: dict[str, Any]
                ) -> BlockGrid:  # fmt: skip
    """The symmetric canonical grid over the items sorted by label, shared by both methods."""
    from atlantis.evaluation.rank_count import label_grid_order

    dist = get_distance(distance, knn_kwargs.get("curvature", DEFAULT_CURVATURE))
    device = knn_kwargs.get("device")
    dev = torch.device(device) if device is not None else emb.device
    dtype = torch.float64 if emb.dtype == torch.float64 else torch.float32
    prepared = dist.prepare(emb.to(dev, dtype))
    return BlockGrid(dist, prepared, order=label_grid_order(codes), tile=blocks.TILE)


def _resolve_method(method: str, grid: BlockGrid, codes: np.ndarray, need_ap: bool,
                    budget: int) -> str:  # fmt: skip
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        if method == "count" and grid.q.x.device.type != "cpu":
            raise ValueError("method='count' runs on the CPU; use method='topk' on other devices")
        return method
    if grid.q.x.device.type != "cpu":
        return "topk"
    from atlantis.evaluation.rank_count import threshold_bytes

    itemsize = grid.q.x.element_size()
    fits = threshold_bytes(codes, need_ap, itemsize, torch.get_num_threads()) <= budget
    return "count" if fits else "topk"


def _scan_count(grid: BlockGrid, codes: np.ndarray, k_search: int, need_ap: bool
                ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """First-hit ranks and AP@R from the rank counter (see :mod:`.rank_count`)."""
    from atlantis.evaluation.rank_count import count_positive_ranks

    pr = count_positive_ranks(grid, codes, k_search, need_ap)
    n = len(codes)
    r = pr.num_positives
    used = pr.offsets[1:] - pr.offsets[:-1]
    first_hit = np.full(n, k_search, dtype=np.int64)
    has = used > 0
    first_hit[has] = np.minimum(pr.ranks[pr.offsets[:-1][has]], k_search)
    ap = np.full(n, np.nan)
    if need_ap:
        query = np.repeat(np.arange(n), used)
        j = np.arange(len(pr.ranks)) - np.repeat(pr.offsets[:-1], used)
        in_top = pr.ranks < r[query]
        terms = (j[in_top] + 1) / (pr.ranks[in_top] + 1.0)
        sums = np.bincount(query[in_top], weights=terms, minlength=n)
        ap[r > 0] = sums[r > 0] / r[r > 0]
    return first_hit, ap


def _scan_topk(grid: BlockGrid, codes: np.ndarray, k_search: int, need_ap: bool,
               knn_kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Leave-one-out top-k scan: per query, the rank of its first hit and its AP@R.

    Returns ``first_hit`` (0-based rank of the first same-label neighbour, ``k_search`` if
    none within the top ``k_search``) and ``ap`` (AP@R, NaN where R = 0 or not requested).
    """
    n = len(codes)
    budget = knn_kwargs.get("memory_budget_bytes", DEFAULT_MEMORY_BUDGET)
    itemsize = grid.q.x.element_size()
    chunk = knn_kwargs.get("chunk_size") or query_chunk_size(n, k_search, itemsize, budget,
                                                             grid.tile)  # fmt: skip
    codes_t = torch.from_numpy(codes)
    r_all = torch.from_numpy(np.bincount(codes)[codes] - 1)  # other same-label items
    first_hit = np.empty(n, dtype=np.int64)
    ap = np.full(n, np.nan)
    assert grid.order is not None
    for start, stop, idx, _ in scan_grid(grid, k_search, exclude_self=True, chunk_size=chunk,
                                         memory_budget_bytes=budget):  # fmt: skip
        queries = torch.from_numpy(grid.order[start:stop])
        idx = idx.cpu()
        rel = codes_t[idx] == codes_t[queries, None]
        hit_any = rel.any(dim=1)
        first = rel.to(torch.uint8).argmax(dim=1)  # argmax returns the first maximum
        first_hit[queries.numpy()] = torch.where(hit_any, first, k_search).numpy()
        r = r_all[queries]
        max_r = int(r.max())
        if need_ap and max_r > 0:
            ranks = torch.arange(1, max_r + 1)
            rel_r = rel[:, :max_r] & (ranks <= r[:, None])
            precision = rel_r.cumsum(dim=1).double() / ranks
            ap_chunk = (precision * rel_r).sum(dim=1) / r.clamp_min(1)
            ap[queries.numpy()] = torch.where(r > 0, ap_chunk, torch.nan).numpy()
    return first_hit, ap


def _scan(emb: torch.Tensor, codes: np.ndarray, k_search: int, need_ap: bool, method: str,
          knn_kwargs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    grid = _label_grid(emb, codes, knn_kwargs["distance"], knn_kwargs)
    budget = knn_kwargs.get("memory_budget_bytes", DEFAULT_MEMORY_BUDGET)
    if _resolve_method(method, grid, codes, need_ap, budget) == "count":
        return _scan_count(grid, codes, k_search, need_ap)
    return _scan_topk(grid, codes, k_search, need_ap, knn_kwargs)


def _prepare(
    embeddings: Any, labels: Any, ks: int | Iterable[int] | None, knn_kwargs: dict[str, Any]
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validate every input before any compute; resolve ``ks=None`` to :func:`default_ks`."""
    get_distance(knn_kwargs["distance"], knn_kwargs.get("curvature", DEFAULT_CURVATURE))
    unknown = set(knn_kwargs) - {"distance", "memory_budget_bytes", "chunk_size", "device",
                                 "curvature"}  # fmt: skip
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    emb = as_embeddings(embeddings, "embeddings")
    n = emb.shape[0]
    if n < 2:
        raise ValueError(f"embeddings: leave-one-out retrieval needs at least 2 items, got {n}")
    codes, classes = _encode_labels(labels, n)
    ks_t = _validate_ks(default_ks(n, len(classes)) if ks is None else ks, n)
    return emb, codes, classes, ks_t


def _recall_from_first_hit(first_hit: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    """R@K: fraction of queries whose first hit is within the top K (K clamped to N-1)."""
    n = len(first_hit)
    return {k: float(np.mean(first_hit < min(k, n - 1))) for k in ks}


def recall_at_k(
    embeddings: Any,
    labels: Any,
    ks: int | Iterable[int] = DEFAULT_KS,
    distance: str = "cosine",
    method: Method = "auto",
    **knn_kwargs: Any,
) -> dict[int, float]:
    """Leave-one-out Recall@K of a set of embeddings, keyed by K (sorted ascending).

    Args:
        embeddings: [N, d] finite float array or tensor, N >= 2.
        labels: N ints or strings (list, numpy array or tensor).
        ks: cut-offs. A K larger than the N-1 other items warns and is evaluated exactly
            with all N-1 as neighbours (keyed by the K asked for), rather than failing.
        distance: ``"cosine"``, ``"euclidean"`` or ``"poincare"``.
        method: ``"count"`` ranks each query's positives by counting (CPU, the fast path),
            ``"topk"`` selects every query's top-K neighbours (any device, the reference);
            ``"auto"`` (default) counts on the CPU when its thresholds fit the memory
            budget. Both read the same canonical key blocks, so their results are equal.
        **knn_kwargs: ``memory_budget_bytes``, ``chunk_size`` (top-k scan), ``device``,
            ``curvature`` (see :func:`~atlantis.evaluation.knn.knn`).
    """
    knn_kwargs["distance"] = distance
    emb, codes, _, ks_t = _prepare(embeddings, labels, ks, knn_kwargs)
    k_search = min(ks_t[-1], len(codes) - 1)
    first_hit, _ = _scan(emb, codes, k_search, False, method, knn_kwargs)
    return _recall_from_first_hit(first_hit, ks_t)


def evaluate_retrieval(
    embeddings: Any,
    labels: Any,
    ks: int | Iterable[int] | None = None,
    distance: str = "cosine",
    method: Method = "auto",
    **knn_kwargs: Any,
) -> RetrievalMetrics:
    """Recall@K, MAP@R and per-class R@1 from one leave-one-out neighbour scan.

    ``ks=None`` picks :func:`default_ks` from the set's size and number of classes. The scan
    searches max(max K, largest R) neighbours so both metrics come from the same pass.
    MAP@R skips queries with R = 0 (no other image of their class) and is NaN if all are.
    Other arguments are as in :func:`recall_at_k`.
    """
    knn_kwargs["distance"] = distance
    emb, codes, classes, ks_t = _prepare(embeddings, labels, ks, knn_kwargs)
    n = len(codes)
    counts = np.bincount(codes)
    k_search = min(max(ks_t[-1], int(counts.max()) - 1, 1), n - 1)
    first_hit, ap = _scan(emb, codes, k_search, True, method, knn_kwargs)

    hit1 = (first_hit < 1).astype(np.float64)
    per_class = np.bincount(codes, weights=hit1, minlength=len(classes)) / counts
    has_partner = ~np.isnan(ap)
    return RetrievalMetrics(
        recall=_recall_from_first_hit(first_hit, ks_t),
        map_at_r=float(ap[has_partner].mean()) if has_partner.any() else math.nan,
        per_class_r1={c.item(): float(v) for c, v in zip(classes, per_class, strict=True)},
        num_queries=n,
        num_classes=len(classes),
        distance=get_distance(distance).name,
        num_map_at_r_queries=int(has_partner.sum()),
    )

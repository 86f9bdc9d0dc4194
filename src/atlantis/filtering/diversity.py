"""Diversity control: drop synthetic images that (almost) repeat another image.

The paper names "diversity control" but does not specify it; this is ours. A text-to-image
model asked many times for the same description often returns near-identical pictures, and
a retrieval backend can return an image that is already in the training set. Such images
add no information and over-weight their description in training, so after ORDC:

* a synthetic image is dropped when its cosine similarity to a **real** image is at least
  ``threshold`` (reason ``near_duplicate_real``; real images always win, they are the data);
* among the synthetic images, rows are visited in order and an image is dropped when it is
  that similar to an earlier **kept** one (reason ``near_duplicate``), as in greedy
  non-maximum suppression. So the kept set has no pair at or above the threshold, and every
  dropped image names a kept (or real) image it duplicates. Unlike "keep one per connected
  group", a chain a~b~c where a and c differ keeps both a and c.

Similarities are compared with a 1e-6 tolerance (float32 rounding), so ``threshold=1.0``
means exact copies. ``scope="class"`` (default) compares an image only with images of its own label: two near
identical images with different labels are a labelling question, not redundancy.
``scope="all"`` compares with everything. The order of the rows decides which copy survives,
so callers pass them in a deterministic order (the filter stage sorts by plan id, then id).

Neighbours come from the exact chunked search of :mod:`atlantis.evaluation.knn`. To be exact
without a full similarity matrix, each query starts with its 16 nearest neighbours and the
queries whose farthest neighbour still passes the threshold are searched again with twice
as many, until every pair above the threshold is found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from atlantis.evaluation.knn import knn
from atlantis.filtering.arrays import as_labels, as_matrix, class_indices

__all__ = [
    "NEAR_DUPLICATE",
    "NEAR_DUPLICATE_REAL",
    "DiversityResult",
    "auto_threshold",
    "diversity_keep",
]

NEAR_DUPLICATE = "near_duplicate"  # of an earlier kept synthetic image
NEAR_DUPLICATE_REAL = "near_duplicate_real"  # of a real image

Scope = Literal["class", "all"]
_FIRST_K = 16
#: float32 cosine of identical vectors can fall just short of 1; threshold 1.0 = exact copies.
_TOL = 1e-6


#: ``auto_threshold``: the quantile of real nearest-neighbour similarities, and the fallback.
AUTO_QUANTILE = 0.99
AUTO_FALLBACK = 0.95


def auto_threshold(real_embeddings: Any, quantile: float = AUTO_QUANTILE) -> float:
    """A near-duplicate threshold measured on the real images themselves.

    The real images are distinct pictures by definition, so the cosine similarity of each
    one to its nearest *other* real image shows how close distinct images get in this
    embedding space. A synthetic image more similar to another than ``quantile`` of those
    (default 99 %) is closer than distinct images almost ever are: a near duplicate. The
    quantile, not the maximum, so that a few true duplicates in the real data do not lift
    the bar. Fewer than 2 real images: ``AUTO_FALLBACK``.
    """
    x = as_matrix(real_embeddings, "real_embeddings")
    if len(x) < 2:
        return AUTO_FALLBACK
    _, dist = knn(x, None, 1, "cosine")
    nearest = 1.0 - dist.numpy()[:, 0].astype(np.float64)  # cosine distance -> similarity
    return float(np.clip(np.quantile(nearest, quantile), 0.5, 1.0))


@dataclass(frozen=True)
class DiversityResult:
    """Per synthetic image: kept or not, and for a dropped one what it duplicates.

    ``duplicate_of`` indexes the synthetic rows, or the real rows where ``of_real`` is True
    (-1 for kept images); ``similarity`` is the cosine similarity to it (NaN when kept).
    """

    keep: np.ndarray
    duplicate_of: np.ndarray
    of_real: np.ndarray
    similarity: np.ndarray
    threshold: float

    def reason(self, i: int) -> str | None:
        """``near_duplicate``, ``near_duplicate_real``, or None for a kept image."""
        if self.keep[i]:
            return None
        return NEAR_DUPLICATE_REAL if self.of_real[i] else NEAR_DUPLICATE


def diversity_keep(
    embeddings: Any,
    labels: Any | None = None,
    threshold: float = 0.95,
    *,
    real_embeddings: Any | None = None,
    real_labels: Any | None = None,
    scope: Scope = "class",
    device: str | None = None,
) -> DiversityResult:
    """Keep mask after near-duplicate removal (see the module doc for the rule).

    Args:
        embeddings: [S, D] synthetic embeddings, in priority order (earlier rows win).
        labels: S labels; needed for ``scope="class"``.
        threshold: cosine similarity in (0, 1] at or above which two images are duplicates.
        real_embeddings, real_labels: the real images to compare against (optional).
        scope: ``"class"`` (same label only) or ``"all"``.
        device: where the kNN search runs (default CPU).
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in (0, 1], got {threshold!r}")
    if scope not in ("class", "all"):
        raise ValueError(f"scope must be 'class' or 'all', got {scope!r}")
    syn = as_matrix(embeddings, "embeddings", empty_dim=1)
    real = None if real_embeddings is None else as_matrix(real_embeddings, "real_embeddings")
    if real is not None and len(syn) and real.shape[1] != syn.shape[1]:
        raise ValueError(
            f"real_embeddings have dim {real.shape[1]} but embeddings have dim {syn.shape[1]}"
        )
    if scope == "class":
        if labels is None or (real is not None and real_labels is None):
            raise ValueError("scope='class' needs labels (and real_labels with real_embeddings)")
        y = as_labels(labels, len(syn), "labels", "embeddings")
        y_real = None if real is None else as_labels(real_labels, len(real), "real_labels",
                                                     "real_embeddings")  # fmt: skip
        groups = _groups(y, y_real)
    else:
        groups = [(np.arange(len(syn)), np.arange(0 if real is None else len(real)))]

    n = len(syn)
    keep = np.ones(n, dtype=bool)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    of_real = np.zeros(n, dtype=bool)
    similarity = np.full(n, np.nan)
    for syn_rows, real_rows in groups:
        if real is not None and len(real_rows) and len(syn_rows):
            q, g, s = _pairs_above(syn[syn_rows], real[real_rows], threshold, False, device)
            best = _best_per_query(q, s)
            for qi, pi in best.items():
                keep[syn_rows[qi]] = False
                of_real[syn_rows[qi]] = True
                duplicate_of[syn_rows[qi]] = real_rows[g[pi]]
                similarity[syn_rows[qi]] = s[pi]
        if len(syn_rows) > 1:
            q, g, s = _pairs_above(syn[syn_rows], syn[syn_rows], threshold, True, device)
            _suppress(syn_rows, q, g, s, keep, duplicate_of, similarity)
    return DiversityResult(keep, duplicate_of, of_real, similarity, float(threshold))


def _groups(y: np.ndarray, y_real: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per label of the synthetic set: its synthetic rows and the real rows of that label."""
    y_real = y_real if y_real is not None else y[:0]
    classes, (idx, idx_real) = class_indices(y, y_real)
    by_class = np.argsort(idx, kind="stable")
    starts = np.searchsorted(idx[by_class], np.arange(len(classes) + 1))
    real_by_class = np.argsort(idx_real, kind="stable")
    real_starts = np.searchsorted(idx_real[real_by_class], np.arange(len(classes) + 1))
    return [
        (by_class[starts[c] : starts[c + 1]], real_by_class[real_starts[c] : real_starts[c + 1]])
        for c in range(len(classes))
        if starts[c + 1] > starts[c]
    ]


def _pairs_above(
    q: np.ndarray, g: np.ndarray, threshold: float, same_set: bool, device: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query row, gallery row, similarity) with cosine similarity >= ``threshold``.

    Exact: a query whose k-th neighbour still passes is searched again with 2k neighbours.
    With ``same_set`` the query itself is left out (by index, so exact copies still pair).
    """
    threshold -= _TOL
    out_q, out_g, out_s = [], [], []
    pending = np.arange(len(q))
    k = min(_FIRST_K, len(g))
    while pending.size:
        idx_t, dist_t = knn(q[pending], g, k, "cosine", exclude_self=False, device=device)
        idx, sim = idx_t.numpy(), 1.0 - dist_t.numpy().astype(np.float64)
        saturated = sim[:, -1] >= threshold if k < len(g) else np.zeros(len(pending), bool)
        rows, cols = np.nonzero((sim >= threshold) & ~saturated[:, None])
        qi, gi = pending[rows], idx[rows, cols]
        mask = qi != gi if same_set else np.ones(len(qi), dtype=bool)
        out_q.append(qi[mask])
        out_g.append(gi[mask])
        out_s.append(sim[rows, cols][mask])
        pending, k = pending[saturated], min(2 * k, len(g))
    return np.concatenate(out_q), np.concatenate(out_g), np.concatenate(out_s)


def _best_per_query(q: np.ndarray, s: np.ndarray) -> dict[int, int]:
    """For each query with pairs, the position of its most similar pair."""
    best: dict[int, int] = {}
    for pos in np.lexsort((-s, q)):  # by query, most similar first
        best.setdefault(int(q[pos]), int(pos))
    return best


def _suppress(
    rows: np.ndarray,
    q: np.ndarray,
    g: np.ndarray,
    s: np.ndarray,
    keep: np.ndarray,
    duplicate_of: np.ndarray,
    similarity: np.ndarray,
) -> None:
    """Greedy pass in row order: drop an image similar to an earlier kept one."""
    earlier = g < q
    q, g, s = q[earlier], g[earlier], s[earlier]
    for pos in np.lexsort((-s, q)):  # by later row, most similar partner first
        i, j = rows[q[pos]], rows[g[pos]]
        if keep[i] and keep[j]:
            keep[i] = False
            duplicate_of[i] = j
            similarity[i] = s[pos]

"""Class consistency: keep a synthetic image only if the real data agree on its class.

ORDC (:mod:`atlantis.filtering.ordc`) asks "is this image close to its class's real images?"
and answers with the class's own radius, measured on the domains the class already has. Two
measured consequences: an image of a *missing* domain (what a domain-scarcity plan asks for)
sits outside that radius and is removed, and a class cut to two images has a radius too small
to trust. This rule asks another question, "would the real data place this image in its own
class rather than in any other?", which needs neither the radius nor the domains:

* **centroid** (``vote="centroid"``, default): the image's class must be the nearest real-class
  centroid. ``metric="cosine"``: centroids are means of the L2-normalised real vectors and the
  score is the cosine similarity; ``"euclidean"``: plain means, and the score is minus the
  distance. The **margin** is own score minus the best other class's score (cosine: a
  similarity difference; euclidean: how much farther the nearest other centroid is).
* **knn** (``vote="knn"``): the ``k`` nearest real images vote; the margin is (own votes - the
  best other class's votes) / k, a vote share in [-1, 1]. A class with ``n_c < k`` real
  images can collect at most ``n_c`` votes, so this mode is biased against exactly the small
  classes a targeted plan feeds; the centroid mode is not (one centroid per class whatever
  its size). Neighbours come from :func:`atlantis.evaluation.knn.knn` (exact; ties at the
  k-th place go to the lower real index, so the vote is deterministic).

An image is kept iff ``margin >= min_margin`` (default 0: its class is the nearest, or tied
for nearest; a tie keeps, as ORDC keeps an image on its boundary). A 1e-9 tolerance absorbs
float rounding. The best other class is recorded for every image (the class that would win
against it). With a single real class there is no competitor: margin ``inf``, kept.
Images of a class without real images are flagged ``new_class`` and kept iff
``keep_unknown_classes``, as in ORDC.

Vectorised: labels become class indices (``np.unique``), centroid sums are ``np.add.at``
over chunks, and scores are float64 GEMMs over row chunks that bound the [rows, classes]
temporaries (~32 MB), so 100,000 images against 10,000 classes never build the full matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from atlantis.filtering.arrays import (
    class_indices,
    class_means,
    l2_normalize,
    py_value,
    real_and_synthetic,
)
from atlantis.filtering.ordc import NEW_CLASS

__all__ = ["CONSISTENT", "INCONSISTENT", "ConsistencyResult", "consistency", "consistency_keep"]

CONSISTENT = "consistent"  # own class wins by >= min_margin: kept
INCONSISTENT = "inconsistent"  # another class wins (or own wins by too little): removed

Metric = Literal["cosine", "euclidean"]
Vote = Literal["centroid", "knn"]

_TOL = 1e-9
_CHUNK_CELLS = 1 << 22  # float64 cells per [rows, classes] chunk: ~32 MB


@dataclass(frozen=True)
class ConsistencyResult:
    """Per synthetic image (length S): ``keep``, ``reason``, ``margin`` (NaN for a new class,
    ``inf`` when no other class exists), ``best_other`` (index into ``classes`` of the
    strongest other class; -1 when there is none, or in knn mode when no other class got a
    vote), ``own_votes`` (knn only, else -1), ``class_index`` (-1 for a new class) and
    ``new_class``. ``classes``: the real classes, sorted. ``normalized``: whether both sets
    were L2-normalised first (``normalize`` resolved)."""

    keep: np.ndarray
    reason: np.ndarray
    margin: np.ndarray
    best_other: np.ndarray
    own_votes: np.ndarray
    class_index: np.ndarray
    new_class: np.ndarray
    classes: np.ndarray
    metric: str
    vote: str
    k: int
    min_margin: float
    normalized: bool = False

    def best_other_class(self, i: int) -> Any:
        """The strongest other class of image ``i`` (a plain label), or None."""
        j = int(self.best_other[i])
        return None if j < 0 else py_value(self.classes[j])


def consistency_keep(*args: Any, **kwargs: Any) -> np.ndarray:
    """Boolean keep mask (see :func:`consistency` for the arguments)."""
    return consistency(*args, **kwargs).keep


def consistency(
    real_embeddings: Any,
    real_labels: Any,
    synthetic_embeddings: Any,
    synthetic_labels: Any,
    *,
    metric: Metric = "cosine",
    vote: Vote = "centroid",
    k: int = 10,
    min_margin: float = 0.0,
    keep_unknown_classes: bool = True,
    normalize: bool | Literal["auto"] = False,
) -> ConsistencyResult:
    """Apply the class-consistency rule; every input is checked before any computation.

    Args:
        real_embeddings, real_labels: [N, D] real training images and their N labels.
        synthetic_embeddings, synthetic_labels: [S, D] (S may be 0) and S labels.
        metric: ``"cosine"`` or ``"euclidean"``.
        vote: ``"centroid"`` (nearest class centroid) or ``"knn"`` (k nearest real images).
        k: neighbours in knn mode (capped at N).
        min_margin: own score - best other score must be at least this (units: see module doc).
        keep_unknown_classes: keep images whose class has no real image.
        normalize: L2-normalise both sets first (the filter's ``normalize``): True, False or
            ``"auto"`` (unless the real vectors are unit length already); the choice made
            is the result's ``normalized``.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if vote not in ("centroid", "knn"):
        raise ValueError(f"vote must be 'centroid' or 'knn', got {vote!r}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1 (neighbours that vote), got {k!r}")
    min_margin = float(min_margin)
    if not np.isfinite(min_margin):
        raise ValueError(f"min_margin must be a finite number, got {min_margin!r}")
    real, syn, y_real, y_syn, normalized = real_and_synthetic(
        real_embeddings, real_labels, synthetic_embeddings, synthetic_labels, normalize
    )

    classes, (real_idx, syn_idx) = class_indices(y_real, y_syn)
    n_real = np.bincount(real_idx, minlength=len(classes))
    has_real = n_real > 0
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[has_real] = np.arange(int(has_real.sum()))
    classes, real_idx, class_index = classes[has_real], remap[real_idx], remap[syn_idx]
    known = class_index >= 0

    margin = np.full(len(syn), np.nan)
    best_other = np.full(len(syn), -1, dtype=np.int64)
    own_votes = np.full(len(syn), -1, dtype=np.int64)
    k_used = min(int(k), len(real))
    if known.any():
        rows = np.flatnonzero(known)
        if vote == "centroid":
            m, b = _centroid_margins(real, real_idx, len(classes), syn[rows], class_index[rows],
                                     metric)  # fmt: skip
        else:
            m, b, v = _knn_margins(real, real_idx, len(classes), syn[rows], class_index[rows],
                                   metric, k_used)  # fmt: skip
            own_votes[rows] = v
        margin[rows], best_other[rows] = m, b
    with np.errstate(invalid="ignore"):
        passed = margin >= min_margin - _TOL * (1.0 + np.abs(min_margin))  # NaN -> False
    keep = np.where(known, passed, keep_unknown_classes)
    reason = np.where(known, np.where(passed, CONSISTENT, INCONSISTENT), NEW_CLASS).astype(object)
    return ConsistencyResult(
        keep=keep, reason=reason, margin=margin, best_other=best_other, own_votes=own_votes,
        class_index=class_index, new_class=~known, classes=classes, metric=metric, vote=vote,
        k=k_used, min_margin=min_margin, normalized=normalized,
    )  # fmt: skip


# ------------------------------------------------------------------------------ scores


def _chunk_rows(n_classes: int) -> int:
    return max(1, _CHUNK_CELLS // max(n_classes, 1))


def _own_and_best_other(scores: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:  # fmt: skip
    """(own score, best other score, its class index) per row; other = -inf when none.

    ``argmax`` returns the first maximum, so a tie between other classes names the lower
    class index (the first label in sorted order): deterministic.
    """
    r = np.arange(len(scores))
    own_score = scores[r, own].copy()
    scores[r, own] = -np.inf
    best = np.argmax(scores, axis=1)
    return own_score, scores[r, best], best


def _centroid_margins(
    real: np.ndarray, real_idx: np.ndarray, n_classes: int, syn: np.ndarray, own: np.ndarray,
    metric: str,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Margin and best other class of each synthetic row against the class centroids."""
    counts = np.bincount(real_idx, minlength=n_classes)
    if metric == "cosine":
        centroids = class_means(l2_normalize(real), real_idx, counts)
        centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True),
                                           1e-12)  # fmt: skip
    else:
        centroids = class_means(real, real_idx, counts)
    sq_norms = np.einsum("ij,ij->i", centroids, centroids)
    margin = np.empty(len(syn))
    best_other = np.empty(len(syn), dtype=np.int64)
    step = _chunk_rows(n_classes)
    for start in range(0, len(syn), step):
        x = syn[start : start + step].astype(np.float64)
        if metric == "cosine":
            scores = l2_normalize(x) @ centroids.T
        else:  # minus the distance: higher is nearer, as for the similarity
            sq = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ centroids.T) + sq_norms
            scores = -np.sqrt(np.maximum(sq, 0.0))
        own_score, other, best = _own_and_best_other(scores, own[start : start + step])
        with np.errstate(invalid="ignore"):
            m = own_score - other  # other = -inf (a single class): margin inf
        margin[start : start + step] = m
        best_other[start : start + step] = np.where(np.isfinite(other), best, -1)
    return margin, best_other


def _knn_margins(
    real: np.ndarray, real_idx: np.ndarray, n_classes: int, syn: np.ndarray, own: np.ndarray,
    metric: str, k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Vote-share margin, best other class and own votes among the ``k`` nearest real images."""
    from atlantis.evaluation.knn import knn  # torch: only when this mode is used

    neighbours, _ = knn(syn.astype(np.float32), real.astype(np.float32), k, metric)
    labels = real_idx[neighbours.numpy()]  # [S, k] class indices
    margin = np.empty(len(syn))
    best_other = np.empty(len(syn), dtype=np.int64)
    own_votes = np.empty(len(syn), dtype=np.int64)
    step = _chunk_rows(n_classes)
    for start in range(0, len(syn), step):
        lab = labels[start : start + step]
        n = len(lab)
        flat = (np.arange(n)[:, None] * n_classes + lab).ravel()
        votes = np.bincount(flat, minlength=n * n_classes).reshape(n, n_classes).astype(float)
        own_v, other_v, best = _own_and_best_other(votes, own[start : start + step])
        other_v = np.where(np.isfinite(other_v), other_v, 0.0)  # a single class: no rival
        margin[start : start + step] = (own_v - other_v) / k
        best_other[start : start + step] = np.where(other_v > 0, best, -1)
        own_votes[start : start + step] = own_v.astype(np.int64)
    return margin, best_other, own_votes

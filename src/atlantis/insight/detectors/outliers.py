"""Outliers: training images far from the rest of their class in embedding space.

The flag uses the same geometry as ATLANTIS' ORDC filter, so the DIG reports real data by
the rule later applied to synthetic data: for class ``c`` with centroid ``mu_c`` and mean
distance ``r_c`` of its images to ``mu_c``, an image ``x`` is an outlier when
``||x - mu_c|| > delta * r_c`` (default ``delta = 2``). Its score is
``2 ** (-ratio / delta)`` with ``ratio = ||x - mu_c|| / r_c``: 1 at the centroid, 0.5
exactly at the ORDC boundary, towards 0 far beyond it (lower = more severe, as in Datalab).

Embeddings are L2-normalised first (``normalize=True``) because retrieval ranks by cosine:
a feature's length carries contrast and exposure, not identity, and would otherwise
dominate the distances. Classes with fewer than ``min_class_size`` embedded images are
skipped: with one or two images the radius says nothing about what is typical.

Each image also gets a class-agnostic kNN score, as in cleanlab's outlier issue:
``exp(-m / median(m))`` with ``m`` its mean distance to its ``k`` nearest training images
(default 5), so a typical image scores ~0.37 and an isolated one tends to 0. It is reported
(``detail["knn_score"]``, ``summary["most_isolated"]``) but does not set the flag.
Rows whose id is not a training record carry no label and are left out.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from atlantis.evaluation.knn import knn
from atlantis.insight.detectors.base import (
    DETECTORS,
    Detector,
    DetectorInputs,
    DetectorResult,
    ItemIssue,
)

__all__ = ["Outliers"]


@DETECTORS.register("outliers", help="images far from their class centroid (ORDC rule)")
class Outliers(Detector):
    """Images beyond ``delta`` x their class's mean distance to its centroid."""

    name = "outliers"
    requires = frozenset({"embeddings", "records"})

    def __init__(
        self,
        delta: float = 2.0,
        k: int = 5,
        min_class_size: int = 3,
        normalize: bool = True,
        max_listed: int = 20,
    ) -> None:
        if delta <= 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.delta, self.k, self.min_class_size = delta, k, min_class_size
        self.normalize, self.max_listed = normalize, max_listed

    def run(self, inputs: DetectorInputs) -> DetectorResult:
        assert inputs.embeddings is not None and inputs.embedding_ids is not None
        labels_by_id = inputs.labels_by_id()
        rows = [i for i, image_id in enumerate(inputs.embedding_ids) if image_id in labels_by_id]
        if not rows:
            raise ValueError("no embedding id matches a training record")
        ids = [inputs.embedding_ids[i] for i in rows]
        labels = np.array([labels_by_id[i] for i in ids], dtype=object)
        x = np.asarray(inputs.embeddings[rows], dtype=np.float32)
        if self.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

        knn_dist, knn_score = self._knn_scores(x)
        sizes = Counter(labels.tolist())
        too_small = sorted(c for c, n in sizes.items() if n < self.min_class_size)
        items: list[ItemIssue] = []
        radius: dict[str, float] = {}
        for cls in sorted(c for c, n in sizes.items() if n >= self.min_class_size):
            members = np.flatnonzero(labels == cls)
            xc = x[members]
            dist = np.linalg.norm(xc - xc.mean(axis=0, dtype=np.float64), axis=1)
            r = float(dist.mean())
            radius[cls] = r
            for m, d in zip(members, dist, strict=True):
                ratio = float(d) / r if r > 1e-12 else (0.0 if d <= 1e-12 else math.inf)
                score = 2.0 ** (-ratio / self.delta)
                detail = {
                    "class": cls,
                    "distance": float(d),
                    "class_radius": r,
                    "ratio": ratio,
                    "knn_score": float(knn_score[m]),
                    "mean_knn_distance": float(knn_dist[m]),
                }
                items.append(ItemIssue(ids[m], score, ratio > self.delta, detail))

        result = DetectorResult(self.name, "ok", items=items)
        result.summary = self._summary(result, sizes, radius, too_small)
        result.summary["n_unlabelled_rows"] = len(inputs.embedding_ids) - len(rows)
        result.info = {
            "rule": "||x - mu_c|| > delta * r_c (ORDC)",
            "score": "2 ** (-ratio / delta)",
            "knn_score": "exp(-mean kNN distance / median of it)",
            "normalized": self.normalize,
        }
        return result

    def _knn_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean Euclidean distance to the k nearest images, and cleanlab's exp score of it."""
        if len(x) < 2:
            return np.zeros(len(x)), np.ones(len(x))
        _, dist = knn(x, None, min(self.k, len(x) - 1), "euclidean")
        mean = dist.numpy().astype(np.float64).mean(axis=1)
        scale = max(float(np.median(mean)), 100 * np.finfo(np.float64).eps)
        return mean, np.exp(-mean / scale)

    def _summary(
        self,
        result: DetectorResult,
        sizes: Counter[str],
        radius: dict[str, float],
        too_small: list[str],
    ) -> dict[str, Any]:
        flagged = result.flagged()
        per_class = Counter(i.detail["class"] for i in flagged)
        isolated = sorted(result.items, key=lambda i: (i.detail["knn_score"], i.key))
        return {
            "n_images": len(result.items),
            "n_classes_checked": len(radius),
            "delta": self.delta,
            "k": self.k,
            "n_outliers": len(flagged),
            "outlier_rate": len(flagged) / len(result.items) if result.items else 0.0,
            "outliers_per_class": [
                {"class": c, "n_outliers": n, "n_images": sizes[c], "class_radius": radius[c]}
                for c, n in sorted(per_class.items(), key=lambda kv: (-kv[1], kv[0]))
            ][: self.max_listed],
            "top_outliers": [
                {"id": i.key, "class": i.detail["class"], "ratio": i.detail["ratio"]}
                | {"score": i.score, "knn_score": i.detail["knn_score"]}
                for i in flagged[: self.max_listed]
            ],
            "most_isolated": [
                {"id": i.key, "class": i.detail["class"], "knn_score": i.detail["knn_score"]}
                for i in isolated[: min(10, self.max_listed)]
            ],
            "n_classes_too_small": len(too_small),
            "classes_too_small": too_small[: self.max_listed],
        }

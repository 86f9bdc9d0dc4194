"""Near duplicates: training images whose embedding almost equals another's.

Duplicates waste training budget, inflate a class's apparent size (so the class-imbalance
numbers overstate it), and, across classes, are label noise that metric learning cannot
satisfy. Each image's ``k`` nearest neighbours by cosine similarity come from the exact
chunked search of :mod:`atlantis.evaluation.knn`; a pair is a near duplicate when its
similarity is at least ``threshold`` (default 0.97).

Score of an image = ``min(1, (1 - s) / (2 (1 - threshold)))`` with ``s`` its nearest
neighbour's similarity: 0 for an exact copy, 0.5 exactly at the threshold, 1 for anything
clearly distinct, so the scale matches the other detectors' "flagged below 0.5".
Sets are the connected components of the near-duplicate pairs found among the ``k``
neighbours (``k`` > 1 so that a set of several copies is linked even when ties hide some).
"""

from __future__ import annotations

from collections import defaultdict
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

__all__ = ["NearDuplicates"]

_EXACT = 1.0 - 1e-6  # float32 cosine of identical vectors can fall just short of 1


@DETECTORS.register("near_duplicates", help="images almost identical in embedding space")
class NearDuplicates(Detector):
    """Images with a neighbour of cosine similarity >= ``threshold``."""

    name = "near_duplicates"
    requires = frozenset({"embeddings"})

    def __init__(self, threshold: float = 0.97, k: int = 5, max_listed: int = 10) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.threshold, self.k, self.max_listed = threshold, k, max_listed

    def run(self, inputs: DetectorInputs) -> DetectorResult:
        assert inputs.embeddings is not None and inputs.embedding_ids is not None
        ids = inputs.embedding_ids
        labels = inputs.labels_by_id()
        n = len(ids)
        if n < 2:
            return DetectorResult(self.name, "ok", summary={"n_images": n, "n_pairs": 0})
        idx, dist = knn(inputs.embeddings, None, min(self.k, n - 1), "cosine")
        sims = (1.0 - dist).clamp(-1.0, 1.0).numpy()
        idx_np = idx.numpy()

        pairs: dict[tuple[int, int], float] = {}
        for i, j in zip(*np.nonzero(sims >= self.threshold), strict=True):
            a, b = sorted((i, int(idx_np[i, j])))
            pairs[(a, b)] = max(pairs.get((a, b), -1.0), float(sims[i, j]))

        items = []
        for i, image_id in enumerate(ids):
            s = float(sims[i, 0])
            score = min(1.0, max(0.0, (1.0 - s) / (2.0 * (1.0 - self.threshold))))
            nearest = ids[int(idx_np[i, 0])]
            detail: dict[str, Any] = {"nearest": nearest, "similarity": s}
            if image_id in labels:
                detail["label"] = labels[image_id]
                detail["nearest_label"] = labels.get(nearest)
            items.append(ItemIssue(image_id, score, s >= self.threshold, detail))

        result = DetectorResult(self.name, "ok", items=items)
        sets = _components(pairs)
        result.summary = {
            "n_images": n,
            "threshold": self.threshold,
            "n_flagged_images": sum(i.flagged for i in items),
            "n_pairs": len(pairs),
            "n_exact_pairs": sum(s >= _EXACT for s in pairs.values()),
            "n_sets": len(sets),
            "largest_set": max((len(s) for s in sets), default=0),
            # Cross-class pairs are label noise, not just redundancy (needs record labels).
            "n_cross_class_pairs": _n_cross_class(pairs, ids, labels) if labels else None,
            "examples": [
                {
                    "size": len(members),
                    "ids": [ids[m] for m in members[:5]],
                    "labels": sorted({_label(labels, ids, m) or "?" for m in members}),
                    "max_similarity": max(s for p, s in pairs.items() if p[0] in members),
                }
                for members in sets[: self.max_listed]
            ],
        }
        result.info = {"k": min(self.k, n - 1), "similarity": "cosine", "score": "see module doc"}
        return result


def _label(labels: dict[str, str], ids: list[str], row: int) -> str | None:
    return labels.get(ids[row])


def _n_cross_class(pairs: dict[tuple[int, int], float], ids: list[str], labels: dict) -> int:
    """Pairs whose two images both have labels, and different ones."""
    n = 0
    for a, b in pairs:
        la, lb = labels.get(ids[a]), labels.get(ids[b])
        n += la is not None and lb is not None and la != lb
    return n


def _components(pairs: dict[tuple[int, int], float]) -> list[list[int]]:
    """Connected components of the pair graph, largest first (then by first row)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = defaultdict(list)
    for x in sorted(parent):
        groups[find(x)].append(x)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))

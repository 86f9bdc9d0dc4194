"""Class imbalance: which classes have too few training images.

Score of a class = ``min(1, count / T)``, ``T`` the *typical class size*
(``atlantis.insight.sizes``: the mean count of the classes at or above the median, and why
not the median or the largest class). A class is flagged when its score is below
``threshold`` (default 0.5, i.e. fewer than half of T); T is also the count the planner
brings flagged classes toward.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from atlantis.insight.detectors.base import (
    DETECTORS,
    DetectorInputs,
    DetectorResult,
    ItemIssue,
    RatioDetector,
)
from atlantis.insight.sizes import typical_class_size

__all__ = ["ClassImbalance"]


@DETECTORS.register(
    "class_imbalance", help="classes with few images relative to a typical well-represented class"
)
class ClassImbalance(RatioDetector):
    """Classes with fewer than ``threshold`` x the typical class size of training images."""

    name = "class_imbalance"
    requires = frozenset({"records"})

    def run(self, inputs: DetectorInputs) -> DetectorResult:
        counts = Counter(r.label for r in inputs.records)
        return self.from_counts(dict(counts))

    def from_counts(self, counts: dict[str, int]) -> DetectorResult:
        """Score classes from ready-made counts (the DIG may hold counts without records)."""
        if not counts:
            raise ValueError("no classes to score")
        values = np.array(list(counts.values()), dtype=np.float64)
        median = float(np.median(values))
        typical = typical_class_size(values)
        largest, smallest, total = float(values.max()), float(values.min()), float(values.sum())
        threshold_count = self.threshold * typical
        items = []
        for name, count in counts.items():
            score = min(1.0, count / typical) if typical > 0 else 1.0
            detail = {
                "count": count,
                "share": count / total if total else 0.0,
                "ratio_to_typical": count / typical if typical > 0 else None,
                "ratio_to_median": count / median if median > 0 else None,
                "ratio_to_max": count / largest if largest > 0 else None,
            }
            items.append(ItemIssue(name, score, score < self.threshold, detail))
        result = DetectorResult(self.name, "ok", items=items)
        flagged = result.flagged()
        result.summary = {
            "n_classes": len(counts),
            "n_images": int(total),
            "min_count": int(smallest),
            "median_count": median,
            "typical_count": typical,
            "max_count": int(largest),
            "imbalance_ratio": largest / smallest if smallest > 0 else None,
            "threshold": self.threshold,
            "threshold_count": threshold_count,
            "n_flagged": len(flagged),
            "flagged": [_row(i) for i in flagged[: self.max_listed]],
        }
        result.info = {"score": "min(1, count / typical class size (mean of the upper half))"}
        return result


def _row(item: ItemIssue) -> dict[str, Any]:
    return {"class": item.key, "count": item.detail["count"], "score": item.score}

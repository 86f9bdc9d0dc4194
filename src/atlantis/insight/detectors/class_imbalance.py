"""Class imbalance: which classes have too few training images.

Score of a class = ``min(1, count / T)``, ``T`` the *typical class size*
(:func:`typical_class_size`): the mean count of the classes at or above the median. A class
is flagged when its score is below ``threshold`` (default 0.5, i.e. fewer than half of T),
and T is also the count the planner brings flagged classes toward.

Why not the largest class: one huge class would push every other class towards 0 and flag
them all. Why not the median, as this detector first did: when half or most of the classes
are small (the paper's class-imbalance setting cuts most training classes to 2 images), the
median *is* a small class, so nothing is flagged and the planner's target is 2 images. The
upper half's mean is what a well-represented class looks like as long as at least a
quarter of the classes are: measured on the demo, half of 84 emoji classes cut to 2 images
gave a median of 2.5 (none flagged) and T = 11.4, which flags the 42 cut classes and 16
naturally small ones (under 5.7 images). On data without small classes T is close to the
median.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from atlantis.insight.detectors.base import (
    DETECTORS,
    DetectorInputs,
    DetectorResult,
    ItemIssue,
    RatioDetector,
)

__all__ = ["ClassImbalance", "typical_class_size"]


def typical_class_size(counts: Iterable[float]) -> float:
    """The mean of the counts at or above their median (0.0 for no counts); see the module
    docstring for why not the median itself."""
    values = np.sort(np.asarray(list(counts), dtype=np.float64))
    if not values.size:
        return 0.0
    return float(values[values >= np.median(values)].mean())


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

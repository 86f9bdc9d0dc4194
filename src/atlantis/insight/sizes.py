"""The typical class size: what a well-represented class of this dataset looks like.

One definition shared by everything that calls a class small or brings it up to size: the
DIG's ClassInfer and its class-imbalance detector (which classes are under-represented),
the insight's text and chart, and the planner (how many images a small class needs).

``T`` = the mean count of the classes at or above the median. Why not the largest class:
one huge class would push every other class towards 0 and flag them all. Why not the
median, as the DIG first did: when half or most of the classes are small (the paper's
class-imbalance setting cuts most training classes to 2 images), the median *is* a small
class, so nothing is flagged and the planner's target is 2 images. The upper half's mean
is what a well-represented class looks like as long as at least a quarter of the classes
are: measured on the demo, half of 84 emoji classes cut to 2 images gave a median of 2.5
(none flagged) and T = 11.4, which flags the 42 cut classes and 16 naturally small ones
(under half of T). On data without small classes T is close to the median.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["SMALL_SHARE", "small_class_threshold", "typical_class_size"]

#: A class is under-represented below this share of the typical size (the detector's and
#: ClassInfer's default threshold).
SMALL_SHARE = 0.5


def typical_class_size(counts: Iterable[float]) -> float:
    """The mean of the counts at or above their median (0.0 for no counts)."""
    values = np.asarray(list(counts), dtype=np.float64)
    if not values.size:
        return 0.0
    return float(values[values >= np.median(values)].mean())


def small_class_threshold(counts: Iterable[float], share: float = SMALL_SHARE) -> int:
    """Images a class needs not to be under-represented: ``ceil(share x T)``, at least 1."""
    return max(1, int(np.ceil(share * typical_class_size(counts) - 1e-9)))

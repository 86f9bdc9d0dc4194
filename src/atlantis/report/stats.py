"""Paired statistics between two arms that trained on the same seeds.

Every arm of a comparison trains ``loop.seeds`` times with seeds ``train.seed + i``, so seed
``s`` of the targeted arm and seed ``s`` of the naive arm share their initialisation, data
order and augmentation draws. Differencing per seed cancels that shared part of the noise,
which makes a paired interval much tighter (and more honest) than comparing two arms'
mean ± std. A difference is called *significant* only when its 95 % interval excludes 0;
with one shared seed there is no interval at all, and nothing is called significant.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PairedDifference", "paired_difference"]


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` per shared seed, its mean and (for two seeds or more) a Student t interval.

    ``lo`` / ``hi`` are ``None`` for a single seed: one difference says nothing about how much
    it would move with another seed.
    """

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    mean: float
    lo: float | None
    hi: float | None
    confidence: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def significant(self) -> bool:
        """True only when there is an interval and it excludes 0."""
        if self.lo is None or self.hi is None:
            return False
        return self.lo > 0 or self.hi < 0


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95
) -> PairedDifference:
    """Paired ``a[s] - b[s]`` over the seeds both arms have, with a ``confidence`` interval.

    The interval is ``mean ± t(1 - alpha/2, n - 1) * sd / sqrt(n)`` (Student t, sample sd),
    the textbook paired-t interval. Raises :class:`ValueError` when no seed is shared, a
    value is not finite, or ``confidence`` is not in (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        raise ValueError(
            f"no shared seed: one arm has seeds {sorted(a)}, the other {sorted(b)}; "
            "paired differences need the same seeds in both arms"
        )
    for name, values in (("a", a), ("b", b)):
        for s in seeds:
            if not math.isfinite(float(values[s])):
                raise ValueError(f"{name}[seed {s}] is {values[s]!r}, not a finite number")
    diffs = tuple(float(a[s]) - float(b[s]) for s in seeds)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(seeds, diffs, mean, None, None, confidence)
    from scipy.stats import t  # imported here: scipy is slow to import and only needed here

    half = float(t.ppf(0.5 + confidence / 2, len(diffs) - 1)) * statistics.stdev(diffs)
    half /= math.sqrt(len(diffs))
    return PairedDifference(seeds, diffs, mean, mean - half, mean + half, confidence)

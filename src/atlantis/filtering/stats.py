"""What the filter removed, per class and per domain: the input of the filtering feedback.

Algorithm 1 of the paper (filtering feedback) raises an alert when the filtered-out fraction
of a domain exceeds ``tau_domain`` or that of a class exceeds ``tau_class``: a class whose
generated images are mostly thrown away needs better descriptions, not more of the same.
So the summary gives, for every class and every domain of the synthetic set, how many images
there were, how many were kept, the removed fraction and why they were removed. A record with
several domains counts in each of them; one with none counts under ``(none)``.

Each count also says which filter step removed the images (``removed_by_rule``: the rules of
``filter.rule``, and ``diversity`` for near duplicates). Under ``filter.rule: both`` an image
removed by both rules counts under each, so the two rules can be compared from one run;
``removed_by_reason`` counts each image once, by its first reason.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from atlantis.data.records import ImageRecord
from atlantis.filtering.ordc import OrdcResult

__all__ = ["DIVERSITY", "NO_DOMAIN", "filter_stats", "json_delta"]

NO_DOMAIN = "(none)"
DIVERSITY = "diversity"  # the ``removed_by`` name of near-duplicate removal


def json_delta(delta: float) -> float | str:
    """JSON has no infinity: ``inf`` is written as the string ``"inf"``."""
    return "inf" if math.isinf(delta) else float(delta)


def filter_stats(
    records: Sequence[ImageRecord],
    keep: np.ndarray,
    reasons: Sequence[str],
    ordc_result: OrdcResult,
    *,
    removed_by: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Totals, ``per_class`` and ``per_domain`` rows (JSON-ready) for one delta.

    ``removed_by``: per image, the steps that removed it (empty for a kept image); without
    it ``removed_by_rule`` is empty.
    """
    by_rule = removed_by if removed_by is not None else [()] * len(records)
    geometry = {row["class"]: row for row in ordc_result.class_table()}
    by_class: dict[str, list[int]] = defaultdict(list)
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        by_class[rec.label].append(i)
        for domain in rec.domains or [NO_DOMAIN]:
            by_domain[domain].append(i)

    per_class = []
    for label in sorted(by_class):
        rows = by_class[label]
        geo = geometry.get(label)
        ratios = ordc_result.ratio[rows]
        finite = ratios[np.isfinite(ratios)]
        per_class.append(
            {
                "class": label,
                "new_class": geo is None,
                "n_real": geo["n_real"] if geo else 0,
                "radius": geo["radius"] if geo and math.isfinite(geo["radius"]) else None,
                "raw_radius": geo["raw_radius"] if geo else None,
                "radius_is_fallback": bool(geo and geo["fallback"]),
                **_counts(rows, keep, reasons, by_rule),
                "median_ratio": float(np.median(finite)) if finite.size else None,
            }
        )
    per_domain = [
        {"domain": d, **_counts(by_domain[d], keep, reasons, by_rule)} for d in sorted(by_domain)
    ]
    fallback = ordc_result.fallback_radius
    return {
        "totals": _counts(list(range(len(records))), keep, reasons, by_rule),
        "n_classes": len(by_class),
        "n_new_classes": sum(row["new_class"] for row in per_class),
        "fallback_radius": fallback if fallback is None or math.isfinite(fallback) else "inf",
        "per_class": per_class,
        "per_domain": per_domain,
    }


def _counts(rows: list[int], keep: np.ndarray, reasons: Sequence[str],
            removed_by: Sequence[Sequence[str]]) -> dict[str, Any]:  # fmt: skip
    n = len(rows)
    kept = int(keep[rows].sum()) if n else 0
    removed = Counter(reasons[i] for i in rows if not keep[i])
    by_rule = Counter(step for i in rows if not keep[i] for step in removed_by[i])
    return {
        "synthetic": n,
        "kept": kept,
        "removed": n - kept,
        "kept_fraction": kept / n if n else None,
        "removed_fraction": (n - kept) / n if n else None,
        "removed_by_reason": dict(sorted(removed.items())),
        "removed_by_rule": dict(sorted(by_rule.items())),
    }

"""Domain scarcity: which class x domain cells hold too few images.

For each class, a balanced spread over the ``D`` domains would put ``total / D`` images in
each domain: that is the cell's *expected* count (as in ``ScarceCell.expected``). A cell's
score is ``min(1, count / expected)``, flagged below ``threshold`` (default 0.5); an empty
cell scores 0, the most severe value, and so does every cell of a class with no images.
The domain list is the union over all classes, so a domain a class never mentions counts as
an empty cell of that class: this is exactly the gap the planner should fill.

Per class we also give one overall number, the chi-square statistic of its domain counts
against the uniform spread, ``chi2 = sum((count - expected)^2 / expected)`` with ``D - 1``
degrees of freedom, and its normalised form ``imbalance = sqrt(chi2 / (total * (D - 1)))``
(Cramér's V for a goodness-of-fit test). Why normalise: chi2 grows with the class size, so
raw values rank big classes first; ``imbalance`` is 0 for a perfectly even class and 1 when
all its images sit in one domain, whatever its size, so classes compare directly.
"""

from __future__ import annotations

import math
from typing import Any

from scipy.stats import chi2 as chi2_dist

from atlantis.insight.detectors.base import (
    DETECTORS,
    DetectorInputs,
    DetectorResult,
    ItemIssue,
    RatioDetector,
)

__all__ = ["DomainScarcity", "domain_chi_square"]


def domain_chi_square(counts: list[int]) -> dict[str, Any]:
    """Chi-square of one class's domain counts against an even spread (see module doc)."""
    n_domains, total = len(counts), sum(counts)
    if n_domains < 2 or total == 0:  # nothing to compare: no evidence of imbalance
        return {"chi2": 0.0, "dof": max(0, n_domains - 1), "p_value": 1.0, "imbalance": 0.0}
    expected = total / n_domains
    stat = sum((c - expected) ** 2 / expected for c in counts)
    return {
        "chi2": stat,
        "dof": n_domains - 1,
        "p_value": float(chi2_dist.sf(stat, n_domains - 1)),
        "imbalance": math.sqrt(min(1.0, stat / (total * (n_domains - 1)))),
    }


@DETECTORS.register("domain_scarcity", help="class x domain cells far below an even spread")
class DomainScarcity(RatioDetector):
    """Cells with fewer than ``threshold`` x the class's even share of images."""

    name = "domain_scarcity"
    requires = frozenset({"class_domain_counts"})

    def run(self, inputs: DetectorInputs) -> DetectorResult:
        table = inputs.class_domain_counts or {}
        domains = sorted({d for row in table.values() for d in row})
        if not domains:
            raise ValueError("class x domain counts name no domain")
        items: list[ItemIssue] = []
        per_class: dict[str, dict[str, Any]] = {}
        for cls, row in table.items():
            counts = [int(row.get(d, 0)) for d in domains]
            total = sum(counts)
            expected = total / len(domains)
            stats = domain_chi_square(counts)
            per_class[cls] = stats
            for domain, count in zip(domains, counts, strict=True):
                score = min(1.0, count / expected) if expected > 0 else 0.0
                detail = {
                    "class": cls,
                    "domain": domain,
                    "count": count,
                    "expected": expected,
                    "class_total": total,
                    "class_domain_imbalance": stats["imbalance"],
                }
                items.append(ItemIssue(f"{cls}|{domain}", score, score < self.threshold, detail))
        result = DetectorResult(self.name, "ok", items=items)
        result.summary = self._summary(result, domains, per_class)
        result.info = {
            "score": "min(1, count / (class total / n_domains))",
            "class_imbalance": "sqrt(chi2 / (total * (n_domains - 1))): 0 even, 1 one domain",
        }
        return result

    def _summary(
        self, result: DetectorResult, domains: list[str], per_class: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        flagged = result.flagged()
        totals = dict.fromkeys(domains, 0)
        missing: dict[str, list[str]] = {d: [] for d in domains}
        for item in result.items:
            totals[item.detail["domain"]] += item.detail["count"]
            if item.detail["count"] == 0:
                missing[item.detail["domain"]].append(item.detail["class"])
        grand_total = sum(totals.values())
        worst_classes = sorted(per_class.items(), key=lambda kv: (-kv[1]["imbalance"], kv[0]))
        return {
            "n_classes": len(per_class),
            "n_domains": len(domains),
            "domains": domains,
            "threshold": self.threshold,
            "n_cells": len(result.items),
            "n_flagged_cells": len(flagged),
            "n_empty_cells": sum(len(v) for v in missing.values()),
            "most_severe_cells": [
                {k: i.detail[k] for k in ("class", "domain", "count", "expected")}
                | {"score": i.score}
                for i in flagged[: self.max_listed]
            ],
            "domain_totals": totals,
            "domain_shares": {
                d: t / grand_total if grand_total else 0.0 for d, t in totals.items()
            },
            # Domains absent from some classes: how many classes, and which (first few).
            "missing_domains": {
                d: {"n_classes": len(v), "classes": sorted(v)[: self.max_listed]}
                for d, v in missing.items()
                if v
            },
            "mean_class_domain_imbalance": (
                sum(s["imbalance"] for s in per_class.values()) / len(per_class)
                if per_class
                else 0.0
            ),
            "most_imbalanced_classes": [
                {"class": c, **{k: s[k] for k in ("imbalance", "chi2", "p_value")}}
                for c, s in worst_classes[: min(10, self.max_listed)]
                if s["imbalance"] > 0
            ],
        }

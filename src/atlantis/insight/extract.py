"""InsightExtract (supplement C.1.6): the findings -> one validated ``Insight``.

Two halves. The text of the paper's Figure 1 (``data_overview``, class- and per-class
domain-imbalance recommendations) is written by the ``dig.insight_extract`` task from a
compact view of the structured findings (``findings_view``: capped lists, no records).
The numbers (class counts, domains, class x domain cells, new classes, top tokens,
detector summaries) are copied from the functions that computed them, never from the
LLM's text, so the planner's targets cannot be hallucinated. ``assemble_insight`` joins
both and validates the result.
"""

from __future__ import annotations

import json
from typing import Any

from atlantis.insight.new_classes import name_key
from atlantis.insight.schema import (
    ClassReport,
    DataContext,
    DomainSet,
    FrequencyTable,
    Insight,
    NewClasses,
    Recommendations,
    ScarceCell,
    TokenCount,
)
from atlantis.insight.sizes import typical_class_size
from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore

TASK = "dig.insight_extract"
TEMPLATE = "dig/insight_extract"
MAX_CLASSES = 30  # classes given per-class domain recommendations, and list caps
MAX_CELLS = 40
MAX_SUMMARY_CHARS = 1500


def findings_view(
    context: DataContext,
    report: ClassReport,
    domains: DomainSet,
    counts: dict[str, dict[str, int]],
    cells: list[ScarceCell],
    new: NewClasses,
    detectors: list[dict[str, Any]],
    assigned: dict[str, int],
) -> dict[str, Any]:
    """What the LLM sees: summaries and the worst cases, every list capped."""
    needing = list(dict.fromkeys(c.class_name for c in cells))[:MAX_CLASSES]
    largest = sorted(report.class_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {
        "context": context.model_dump(),
        "classes": {
            "n_classes": len(report.class_names),
            "imbalance_ratio": report.imbalance_ratio,
            "threshold": report.threshold,
            "typical_size": round(typical_class_size(report.class_counts.values()), 3),
            "under_represented": [
                [c, report.class_counts[c]] for c in report.under_represented[:MAX_CLASSES]
            ],
            "n_under_represented": len(report.under_represented),
            "largest": [list(kv) for kv in largest],
        },
        "domains": {
            "criterion": domains.criterion,
            "names": [d.name for d in domains.domains],
            "images_placed_by": assigned,
        },
        "scarce_cells": [[c.class_name, c.domain, c.count, c.expected] for c in cells[:MAX_CELLS]],
        "n_scarce_cells": len(cells),
        "classes_needing_domains": needing,
        "class_domain_counts": {c: counts[c] for c in needing if c in counts},
        "new_classes": new.new_classes,
        "new_classes_rationale": new.rationale,
        "detectors": [_detector_brief(d) for d in detectors],
    }


def _detector_brief(d: dict[str, Any]) -> dict[str, Any]:
    brief = {k: d.get(k) for k in ("name", "status", "n_items", "n_flagged")}
    summary = d.get("summary") or {}
    if len(json.dumps(summary, default=str)) <= MAX_SUMMARY_CHARS:
        brief["summary"] = summary
    return brief


def extract_task(view: dict[str, Any]) -> LLMTask:
    return LLMTask(name=TASK, template=TEMPLATE, variables=view, schema=Recommendations)


def write_recommendations(
    llm: LLM, view: dict[str, Any], class_names: list[str], store: CallStore | None = None
) -> tuple[Recommendations, list[str]]:
    """The Figure 1 text; per-class keys are mapped onto real class names (others dropped)."""
    recs: Recommendations = llm.run(extract_task(view), store)  # type: ignore[assignment]
    by_key = {name_key(c): c for c in class_names}
    mapped: dict[str, str] = {}
    dropped: list[str] = []
    for key, text in recs.domain_imbalance_recommendations.items():
        cls = key if key in class_names else by_key.get(name_key(key))
        if cls is None:
            dropped.append(key)
        else:
            mapped[cls] = text
    return recs.model_copy(update={"domain_imbalance_recommendations": mapped}), dropped


@rule(TASK)
def extract_rules(view: dict[str, Any]) -> Recommendations:
    """Plain sentences built from the numbers in the findings view."""
    cls, dom = view["classes"], view["domains"]
    overview = view["context"]["summary"]
    overview += (f" Domains ({dom['criterion']}): {', '.join(dom['names'])}; "
                 f"{view['n_scarce_cells']} class x domain cells are scarce.")  # fmt: skip
    flagged = [f"{d['name']} ({d['n_flagged']} flagged)" for d in view["detectors"]
               if d.get("status") == "ok" and d.get("n_flagged")]  # fmt: skip
    if flagged:
        overview += " Detectors: " + ", ".join(flagged) + "."
    typical = cls["typical_size"]
    if cls["under_represented"]:
        items = ", ".join(f"{c} ({n} images, about {max(0, round(typical - n))} short of the "
                          f"typical class size {typical:.3g})"
                          for c, n in cls["under_represented"][:10])  # fmt: skip
        more = cls["n_under_represented"] - min(10, len(cls["under_represented"]))
        class_text = (f"Augment the under-represented classes first: {items}"
                      + (f", and {more} more" if more > 0 else "") + ". "
                      f"The largest class is {cls['imbalance_ratio']:.3g} times the smallest; "
                      "bringing small classes to the typical size makes the classes equitable.")  # fmt: skip
    else:
        class_text = (f"No class is under the threshold of {cls['threshold']} images (largest / "
                      f"smallest = {cls['imbalance_ratio']:.3g}); augment all classes evenly.")  # fmt: skip
    if view["new_classes"]:
        class_text += " New classes worth adding: " + ", ".join(view["new_classes"]) + "."
    elif why := view.get("new_classes_rationale"):
        class_text += f" No new class is proposed ({why})."
    cells: dict[str, list[list]] = {}
    for c, d, n, exp in view["scarce_cells"]:
        cells.setdefault(c, []).append([d, n, exp])
    domain_text = {}
    for c in view["classes_needing_domains"]:
        gaps = "; ".join(f"'{d}' ({n} images, {exp:g} expected)" for d, n, exp in cells.get(c, []))
        row = view["class_domain_counts"].get(c, {})
        text = (
            f"Add images of {c} in the scarce domains: {gaps or 'see the class x domain counts'}."
        )
        if row:
            top, n_top = max(row.items(), key=lambda kv: (kv[1], kv[0]))
            text += f" Most of its images are in '{top}' ({n_top})."
        domain_text[c] = text
    return Recommendations(data_overview=overview, class_imbalance_recommendations=class_text,
                           domain_imbalance_recommendations=domain_text)  # fmt: skip


def assemble_insight(
    recs: Recommendations,
    report: ClassReport,
    domains: DomainSet,
    counts: dict[str, dict[str, int]],
    cells: list[ScarceCell],
    new: NewClasses,
    table: FrequencyTable,
    detectors: list[dict[str, Any]],
    metadata: dict[str, Any],
    domain_tokens: dict[str, list[TokenCount]] | None = None,
) -> Insight:
    """The validated ``insight.json`` object (pydantic raises on any inconsistency)."""
    return Insight.model_validate({
        "data_overview": recs.data_overview,
        "class_imbalance_recommendations": recs.class_imbalance_recommendations,
        "domain_imbalance_recommendations": recs.domain_imbalance_recommendations,
        "class_names": report.class_names,
        "class_counts": report.class_counts,
        "imbalance_ratio": report.imbalance_ratio,
        "under_represented_classes": report.under_represented,
        "domain_criterion": domains.criterion,
        "domains": [d.model_dump() for d in domains.domains],
        "class_domain_counts": counts,
        "scarce_cells": [c.model_dump() for c in cells],
        "new_classes": new.new_classes,
        "top_tokens": [t.model_dump() for t in table.top],
        "top_tokens_per_class": {k: [t.model_dump() for t in v] for k, v in table.per_class.items()},
        "domain_tokens": {k: [t.model_dump() for t in v] for k, v in (domain_tokens or {}).items()},
        "findings": detectors,
        "metadata": metadata,
    })  # fmt: skip

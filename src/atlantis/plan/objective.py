"""AugmentationObjective (supplement C.2.1): the brief ``O_aug`` for the description writer.

The APS does not hand the insight straight to the model that writes target-image texts: a
first call turns ``D_insight`` (and the budget the policy allotted) into an objective for
that downstream writer, so the writer knows what the data lacks and what its texts are for.
The model sees a compact view of the insight (capped lists, no records), quoted as data.

The ``rules`` handler (no model) states the same objective from the numbers: which classes,
cells and new classes the plan fills, and the house rules of a good description.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from atlantis.insight.schema import Insight
from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore
from atlantis.plan.budget import Allocation

TASK = "aps.augmentation_objective"
TEMPLATE = "aps/augmentation_objective"
MAX_LISTED = 30  # classes, cells and recommendations shown to the model

GUIDELINES = (
    "Write each description as one caption-like sentence that names the class exactly as given.",
    "Place the subject in its target domain, named as the data names it, with the words the "
    "domain's captions use.",
    "Use the class's own caption words, the ones that tell it apart from the other classes.",
    "Keep the features that identify the class visible; never turn it into another class.",
    "Vary viewpoint, lighting, background and scale so that no two descriptions repeat.",
    "Describe a realistic, plausible image that a text-to-image model can draw.",
)


class AugmentationObjective(BaseModel):
    """O_aug: the objective prompt for the LLM that writes target-image descriptions."""

    model_config = ConfigDict(extra="forbid")

    objective: str = Field(min_length=1)
    guidelines: list[str] = Field(default_factory=list)


def objective_view(insight: Insight, alloc: Allocation) -> dict[str, Any]:
    """What the objective writer sees: the insight's findings and the budget per step."""
    per_class = sorted(alloc.per_class().items(), key=lambda kv: (-kv[1], kv[0]))
    recs = insight.domain_imbalance_recommendations
    return {
        "data_overview": insight.data_overview,
        "class_imbalance_recommendations": insight.class_imbalance_recommendations,
        "domain_imbalance_recommendations": dict(list(recs.items())[:MAX_LISTED]),
        "n_classes": len(insight.class_names),
        "domain_criterion": insight.domain_criterion,
        "domains": [{"name": d.name, "description": d.description} for d in insight.domains],
        "under_represented": [
            [c, insight.class_counts.get(c, 0)]
            for c in insight.under_represented_classes[:MAX_LISTED]
        ],
        "scarce_cells": [
            [s.class_name, s.domain, s.count, s.expected] for s in insight.scarce_cells[:MAX_LISTED]
        ],
        "new_classes": insight.new_classes[:MAX_LISTED],
        "budget": alloc.budget,
        "images_per_step": alloc.spent,
        "images_per_class": [list(kv) for kv in per_class[:MAX_LISTED]],
    }


def objective_task(insight: Insight, alloc: Allocation) -> LLMTask:
    return LLMTask(name=TASK, template=TEMPLATE, variables=objective_view(insight, alloc),
                   schema=AugmentationObjective)  # fmt: skip


def write_objective(
    llm: LLM, insight: Insight, alloc: Allocation, store: CallStore | None = None
) -> AugmentationObjective:
    """AugmentationObjective: ask ``llm`` for O_aug from the insight and the allocation."""
    return llm.run(objective_task(insight, alloc), store)  # type: ignore[return-value]


@rule(TASK)
def objective_rules(v: dict[str, Any]) -> AugmentationObjective:
    """The objective said plainly from the numbers (no model)."""
    crit = v["domain_criterion"]
    parts = [
        f"Write text descriptions of target synthetic images for an image-retrieval "
        f"training set of {v['n_classes']} classes; {v['budget']} images are planned."
    ]
    if under := v["under_represented"]:
        names = ", ".join(f"{c} ({n} images)" for c, n in under[:5])
        parts.append(f"{len(under)} under-represented classes need more images, e.g. {names}.")
    if cells := v["scarce_cells"]:
        names = ", ".join(f"{c} {d}" for c, d, *_ in cells[:5])
        parts.append(f"{len(cells)} class x domain cells are scarce and need images in that "
                     f"domain, e.g. {names}.")  # fmt: skip
    domains = ", ".join(d["name"] for d in v["domains"])
    if new := v["new_classes"]:
        parts.append(f"{len(new)} new classes ({', '.join(new[:5])}) have no real images; "
                     f"show them across all domains ({domains}).")  # fmt: skip
    parts.append(f"Domains ({crit}): {domains}.")
    return AugmentationObjective(objective=" ".join(parts), guidelines=list(GUIDELINES))

"""ReferenceDescription (supplement C.2.2): ``D_ref``, what a target class is, per class.

The description writer works class by class from the objective and a reference
description of the class: its real images (how many, in which domains), what its captions
mention, what the insight recommends, and what the plan will add. A new class has no
images, so its reference says so and asks for diverse domains (the paper's example: "This
class has no image in our data hence the generated images should represent diverse domain
scenarios as per the characteristics of this bird").

Classes go to the model in batches; an answer that leaves classes out is asked again for
the missing ones only, once; names are matched case- and punctuation-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from atlantis.insight.schema import Insight
from atlantis.insight.text import normalise_name
from atlantis.llm.base import LLM, LLMOutputError, LLMTask
from atlantis.llm.concurrency import ordered_map
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore
from atlantis.plan.schema import AllocationRow

TASK = "aps.reference_description"
TEMPLATE = "aps/reference_description"
BATCH = 25  # classes per call


class ClassReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_name: str
    description: str = Field(min_length=1)


class ReferenceDescriptions(BaseModel):
    """D_ref for each class asked about."""

    model_config = ConfigDict(extra="forbid")

    references: list[ClassReference]


def class_facts(insight: Insight, rows: Sequence[AllocationRow], tokens: dict[str, list[str]],
                domain_words: dict[str, list[str]] | None = None,
                ) -> list[dict[str, Any]]:  # fmt: skip
    """One entry per class of ``rows`` (first-seen order): the facts its D_ref is made from."""
    planned: dict[str, dict[str, int]] = {}
    new: dict[str, bool] = {}
    for r in rows:
        cell = planned.setdefault(r.class_name, {})
        cell[r.domain or "any"] = cell.get(r.domain or "any", 0) + r.count
        new[r.class_name] = r.is_new_class
    return [{
        "class_name": c,
        "is_new_class": new[c],
        "n_images": insight.class_counts.get(c, 0),
        "images_per_domain": insight.class_domain_counts.get(c, {}),
        "caption_tokens": tokens.get(c, []),
        "domain_caption_tokens": {d: w for d in cell if (w := (domain_words or {}).get(d))},
        "recommendation": insight.domain_imbalance_recommendations.get(c, ""),
        "planned_per_domain": cell,
    } for c, cell in planned.items()]  # fmt: skip


def reference_task(
    objective: str, criterion: str, classes: list[dict[str, Any]], retry: int = 0
) -> LLMTask:
    variables = {"objective": objective, "domain_criterion": criterion, "classes": classes,
                 "n_classes": len(classes)}  # fmt: skip
    if retry:  # a new request, so that the stored (incomplete) answer is not reused
        variables["retry"] = retry
    return LLMTask(name=TASK, template=TEMPLATE, variables=variables,
                   schema=ReferenceDescriptions)  # fmt: skip


def write_references(
    llm: LLM,
    objective: str,
    criterion: str,
    classes: list[dict[str, Any]],
    store: CallStore | None = None,
    concurrency: int = 1,
) -> dict[str, str]:
    """D_ref per class name of ``classes`` (see the module docstring); up to ``concurrency``
    batches are asked at once, with the same result as one after the other."""

    def batch(todo: list[dict[str, Any]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for attempt in range(2):
            task = reference_task(objective, criterion, todo, attempt)
            answer: ReferenceDescriptions = llm.run(task, store)  # type: ignore[assignment]
            given = {normalise_name(r.class_name): " ".join(r.description.split())
                     for r in answer.references}  # fmt: skip
            for f in todo:
                if text := given.get(normalise_name(f["class_name"])):
                    out[f["class_name"]] = text
            todo = [f for f in todo if f["class_name"] not in out]
            if not todo:
                return out
        raise LLMOutputError(
            f"{TASK}: the model ({llm.identity}) gave no reference description for "
            f"{', '.join(f['class_name'] for f in todo[:10])}"
        )

    batches = [classes[start : start + BATCH] for start in range(0, len(classes), BATCH)]
    return {c: t for got in ordered_map(batch, batches, concurrency) for c, t in got.items()}


@rule(TASK)
def reference_rules(v: dict[str, Any]) -> ReferenceDescriptions:
    """D_ref from the facts (no model), in the words of the paper's example."""
    refs = []
    for f in v["classes"]:
        name, planned = f["class_name"], f["planned_per_domain"]
        where = ", ".join(f"{d} ({n})" for d, n in planned.items())
        if f["is_new_class"]:
            text = (f"The class is {name}. This class has no image in our data, hence the "
                    f"generated images should represent diverse domain scenarios ({where}) as "
                    f"per the characteristics of this class.")  # fmt: skip
        else:
            text = f"The class is {name}, with {f['n_images']} real training images"
            if per := f["images_per_domain"]:
                text += " (per domain: " + ", ".join(f"{d} {n}" for d, n in per.items()) + ")"
            text += "."
            if f["caption_tokens"]:
                text += f" Its captions mention {', '.join(f['caption_tokens'])}."
            for d, words in f.get("domain_caption_tokens", {}).items():
                text += f" Captions of {d} images mention {', '.join(words)}."
            if f["recommendation"]:
                text += f" Insight: {f['recommendation']}"
            text += f" The generated images should show it in: {where}, keeping the features "
            text += f"that identify a {name}."
        refs.append(ClassReference(class_name=name, description=text))
    return ReferenceDescriptions(references=refs)

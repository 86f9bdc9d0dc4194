"""The typed artifacts of the Augmentation Protocol Selector (APS).

``PlanItem`` is one line of ``RUN/plan/<arm>/plan.jsonl``: one synthetic image to make, with
the text it is made from and *why* it exists. ``PlanSummary`` is ``plan.json``: the budget,
the allocation per class and per (class, domain) cell, the policy in words, who wrote the
text (a language model or the ``rules`` stand-in) and every feedback round.

Ids and seeds are pure functions of where an item sits in the plan (arm, round, class,
domain, index), never of the order it was made in: a re-plan reproduces the same ids, so the
generation stage, which addresses its work by id, only makes what is missing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PLAN_SCHEMA_VERSION = 1

Step = Literal["under_represented", "scarce_domains", "new_classes", "remainder", "naive",
               "filter_feedback", "train_feedback"]  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def item_id(arm: str, round_: int, class_name: str, domain: str | None, index: int) -> str:
    """The id of the ``index``-th item of a (round, class, domain) cell of an arm."""
    blob = json.dumps([arm, round_, class_name, domain, index], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def item_seed(plan_seed: int, id_: str) -> int:
    """A generator seed per item: fixed by the plan seed and the id, independent of order."""
    return int(hashlib.sha256(f"{plan_seed}:{id_}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


class PlanItem(_Model):
    """One target synthetic image."""

    id: str
    arm: str
    round: int = Field(ge=0)  # 0: the initial plan; n > 0: the n-th feedback re-plan
    index: int = Field(ge=0)  # position within its (round, class, domain) cell
    class_name: str
    domain: str | None = None
    description: str = Field(min_length=1)  # the target-image text (the generator's prompt)
    negative_prompt: str | None = None
    seed: int
    step: Step
    reason: str  # why this item exists, with the numbers behind it
    is_new_class: bool = False
    reference_image_ids: list[str] = Field(default_factory=list)  # real images, for img2img


class AllocationRow(_Model):
    """``count`` images for one (class, domain) cell, given by one step of the policy."""

    class_name: str
    domain: str | None = None
    count: int = Field(ge=0)
    step: Step
    reason: str
    is_new_class: bool = False
    target: str | None = None  # feedback rounds: the alert it answers ("class:X", "domain:Y")


class CellCount(_Model):
    class_name: str
    domain: str | None = None
    count: int


class Alert(_Model):
    """A feedback finding sent to the APS (Algorithm 1's alert list, Algorithm 2's C_poor)."""

    kind: Literal["class", "domain", "poor_class"]
    target: str  # the class or domain name
    value: float  # the filtered-out fraction, or the class's R@1
    threshold: float  # tau_class / tau_domain / tau
    removed: int = 0  # images filtered out (Algorithm 1)
    exempt: bool = False  # matched the exemption list: reported, not acted on
    message: str


class RoundSummary(_Model):
    """One planning round: round 0 from the insight, later ones from feedback."""

    round: int
    source: Literal["insight", "ingest", "filter", "train"]
    input: str | None = None  # the feedback stage read, with its output hash
    alerts: list[Alert] = Field(default_factory=list)
    allocation: list[AllocationRow] = Field(default_factory=list)
    n_items: int = 0
    note: str = ""
    # Classes this round stopped asking for (the source does not serve them), with why;
    # later rounds never re-plan them (``plan.stop_after``, ``plan.stop_kept_share``).
    stopped: dict[str, str] = Field(default_factory=dict)


class PlanSummary(_Model):
    """``RUN/plan/<arm>/plan.json``."""

    schema_version: int = PLAN_SCHEMA_VERSION
    arm: str
    planner: Literal["targeted", "naive"]
    budget: int  # the arm's whole budget: round 0 plus what feedback rounds may add
    reserve: int = 0  # the part of ``budget`` round 0 left for feedback (plan.feedback_reserve)
    target_count: float | None = None  # the per-class target of step 1
    n_items: int  # all rounds
    per_class: dict[str, int]  # all rounds
    per_cell: list[CellCount]  # all rounds
    policy: str  # the allocation policy and what each step did, in words
    llm: str | None = None  # backend identity; None when no text was asked for
    is_language_model: bool = False
    objective: str | None = None  # O_aug, the brief the description writer worked from
    prompts: dict[str, str] = Field(default_factory=dict)  # template id -> versioned ref
    rounds: list[RoundSummary]
    metadata: dict = Field(default_factory=dict)


def tally(items: list[PlanItem]) -> tuple[dict[str, int], list[CellCount]]:
    """Per-class and per-(class, domain) item counts, in first-seen order."""
    per_class: dict[str, int] = {}
    per_cell: dict[tuple[str, str | None], int] = {}
    for it in items:
        per_class[it.class_name] = per_class.get(it.class_name, 0) + 1
        key = (it.class_name, it.domain)
        per_cell[key] = per_cell.get(key, 0) + 1
    cells = [CellCount(class_name=c, domain=d, count=n) for (c, d), n in per_cell.items()]
    return per_class, cells

"""The ``loop`` section: which arms ``atlantis run`` compares, over how many seeds, and what else.

An *arm* is one way of making the training set, all at the same synthetic-image budget
(``plan.budget``), so that the comparison measures *which* images were added, not how many:

* ``baseline``: the real training images only;
* ``naive``: the naive-untargeted plan (NA, supplement E) with no ORDC (the paper's
  baseline keeps every image; ``naive_filter: true`` filters it like the targeted arm);
* ``targeted``: ATLANTIS: the insight-driven plan, ORDC, and the filtering feedback;
* ``oracle`` (only with a ``data.scenario``): the real images the scenario withheld, put back.
  No augmentation can add more than the data that was taken away, so oracle - baseline is
  the headroom a scenario leaves; like ``baseline`` it needs no plan, source or filter.

Each arm trains ``seeds`` times (``train.seed``, ``train.seed + 1``...) and the report gives
the mean and spread: one seed's difference between arms is often within its noise.

**Budget curves** (``budgets``): the naive and the targeted arm also train at each smaller
budget, on nested subsets of what they sourced at the full budget (``atlantis.train.subsets``:
no image is sourced twice, a bigger budget contains every smaller one), so the report can
plot R@1 against the budget and measure eta (supplement E.3) instead of assuming it.
``match_kept`` cuts the naive arm to as many images as the targeted arm kept, at every
budget, as the paper compares them. ``pool_truth`` names a file with each pool image's true
class and domain (``atlantis.data.truth``): only the report reads it, for source fidelity.

Like ``TrainConfig`` it does not subclass ``atlantis.config.Section`` (that module imports
this one); the model config is the same.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ARM_KINDS = ("baseline", "naive", "targeted", "oracle")
Arm = Literal["baseline", "naive", "targeted", "oracle"]
#: Arms of real images only (see ``atlantis.train.stage.REAL_ARMS``): never planned,
#: sourced or filtered, and without synthetic-image counts.
REAL_ARMS = ("baseline", "oracle")
#: Why an oracle arm needs a scenario: one line, the same at ``run --check`` and train time.
ORACLE_NEEDS_SCENARIO = (
    "the oracle arm restores the training images the scenario withheld "
    "(ingest/dropped.jsonl), but data.scenario.kind is none: there is nothing to restore; "
    "set data.scenario (class_imbalance, domain_scarcity or few_shot) or use the baseline arm"
)


def augmented_arms(arms: list[str]) -> list[str]:
    """The arms that add synthetic images (plan, source, filter), in ``arms``' order."""
    return [a for a in arms if a not in REAL_ARMS]


class LoopConfig(BaseModel):
    """What ``atlantis run`` does after ingest: arms, seeds, feedback, X_s, attack, report."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    arms: list[Arm] = Field(default_factory=lambda: ["baseline", "naive", "targeted"])
    seeds: int = Field(3, ge=1)  # trainings per arm, seeds train.seed + 0..seeds-1
    naive_filter: bool = False  # NA baseline: no ORDC (paper); true: filter it too
    # ORDC's embedding space when filter.embedder is unset: "embed" (the embed section's
    # backbone) or "baseline" (the paper's: the baseline arm's trained model, so the
    # baseline trains first and the filter reads train/baseline/best.pt)
    filter_space: Literal["embed", "baseline"] = "embed"
    filter_feedback_rounds: int = Field(1, ge=0)  # Algorithm 1 rounds (capped by plan.max_rounds)
    train_feedback_rounds: int = Field(0, ge=0)  # Algorithm 2 rounds (re-plan, re-train)
    synthetic_test_per_class: int = Field(0, ge=0)  # X_s images per test class (0: none)
    synthetic_test_delta: float = Field(1.5, gt=0)  # ORDC delta of X_s vs real test classes
    untrained_reference: bool = True  # R@K of the untrained embed-section model, as a row
    attack: bool = True  # adversarial R@1 of the baseline and the targeted arm (first seed)
    report: bool = True  # report.html + report.json
    # Budget curve: the naive and targeted arms also train at each of these synthetic-image
    # budgets (strictly increasing, at most plan.budget), on nested subsets of their sourcing.
    budgets: list[int] = Field(default_factory=list)
    match_kept: bool = False  # naive arm cut to the targeted arm's kept count (the paper's NA)
    pool_truth: str | None = None  # truth file of the retrieval pool (class, domain per image)

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"arms is empty; give some of {list(ARM_KINDS)}")
        return list(dict.fromkeys(v))

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        for i, b in enumerate(v):
            if b <= 0:
                raise ValueError(f"budgets[{i}] is {b}: every budget is a number of synthetic "
                                 "images > 0 (the baseline is the curve's 0)")  # fmt: skip
            if i and b <= v[i - 1]:
                raise ValueError(f"budgets must be strictly increasing: {b} at position {i} "
                                 f"follows {v[i - 1]}; list them smallest first, each once")  # fmt: skip
        return v

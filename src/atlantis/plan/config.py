"""The ``plan`` section of a run's config: which planner, how big, how the budget is spent.

Like ``InsightConfig`` it does not subclass ``atlantis.config.Section``: ``atlantis.config``
would import this module to build ``AtlantisConfig``, so importing it back would be
circular. The model config is the same (unknown keys fail, assignments are validated).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Keys only the feedback re-plans read: changing them must not rebuild round 0.
FEEDBACK_KEYS = {"tau_domain", "tau_class", "exemptions", "max_rounds", "feedback_per_class",
                 "feedback_cap", "stop_after", "stop_kept_share", "stop_min_images"}  # fmt: skip
#: Keys that change how fast a plan is written, never what it holds: not in the config hash.
RUNTIME_KEYS = {"llm_concurrency"}
#: Keys the naive planner never reads (it uses neither the insight nor a language model).
NAIVE_UNUSED_KEYS = {"per_class_target", "classes", "new_class_share", "policy",
                     "descriptions_per_call", "llm", "llm_options",
                     "feedback_reserve"}  # fmt: skip


class PolicyWeights(BaseModel):
    """How the targeted planner spends its budget (see ``atlantis.plan.budget``).

    The two shares cap what steps 1 and 2 may take of the budget, so a user can keep part
    of it for the remainder even when the gaps alone would use everything.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    under_represented: float = Field(1.0, ge=0, le=1)  # step 1: most of the budget it may use
    scarce_domains: float = Field(1.0, ge=0, le=1)  # step 2: most of the budget it may use
    # step 4: the rest, in proportion to the class (then cell) sizes after steps 1-3, or equal
    remainder: Literal["proportional", "uniform"] = "proportional"


class PlanConfig(BaseModel):
    """The Augmentation Protocol Selector (APS) and its feedback loop.

    ``planner``: ``targeted`` (ATLANTIS: reads the insight) or ``naive`` (the NA baseline:
    same budget, uniform random classes, no insight). ``budget`` is the number of synthetic
    images; with ``budget`` unset, ``per_class_target`` sizes the plan instead (every class
    brought to that many images), and a naive plan copies the targeted arm's size.
    ``llm`` names a backend (``rules`` is the offline deterministic stand-in, not a model).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    planner: Literal["targeted", "naive"] = "targeted"
    budget: int | None = None  # checked when planning, with a message saying what to pass
    per_class_target: int | None = Field(None, gt=0)  # None: the typical class size (DIG)
    classes: list[str] | None = None  # only these classes (training or new); None: all
    new_class_share: float = Field(0.1, ge=0, lt=1)  # of the budget, kept for new classes
    policy: PolicyWeights = Field(default_factory=PolicyWeights)
    descriptions_per_call: int = Field(20, gt=0)
    n_reference_images: int = Field(4, ge=0)  # real images of the class per item, for img2img
    seed: int = 0
    llm: str = "rules"
    llm_options: dict[str, Any] = Field(default_factory=dict)
    # LLM requests in flight at once while writing references and descriptions (one class
    # per request stream; 1: one after the other). The plan is the same either way.
    llm_concurrency: int = Field(8, ge=1)
    negative_prompt: str | None = "blurry, low quality, distorted, deformed, watermark, text"
    # IncorporateFeedback: Algorithm 1 (filtering) and Algorithm 2 (training)
    tau_domain: float = Field(0.5, ge=0, le=1)  # alert when more of a domain is filtered out
    tau_class: float = Field(0.5, ge=0, le=1)  # alert when more of a class is filtered out
    exemptions: list[str] = Field(default_factory=list)  # "class:X", "domain:Y" or a bare name
    max_rounds: int = Field(2, ge=0)  # feedback rounds allowed after round 0 (0: none)
    # Share of the budget round 0 leaves for the feedback rounds, so that they draw from the
    # arm's budget instead of adding to it (the loop sets 0 for an arm without feedback).
    feedback_reserve: float = Field(0.2, ge=0, lt=1)
    feedback_per_class: int = Field(10, gt=0)  # Algorithm 2: images per C_poor class
    feedback_cap: int = Field(100, gt=0)  # Algorithm 1: most images one alert adds per round
    # Stop asking the source for a class it cannot serve: a class whose kept share (filter
    # stats) is at most ``stop_kept_share`` in ``stop_after`` filter results in a row is
    # never re-planned again, by either algorithm (0: never stop).
    stop_after: int = Field(1, ge=0)
    stop_kept_share: float = Field(0.05, ge=0, lt=1)
    # ... judged only on at least this many of the class's images in a filter result: one
    # removed image says little about what the source can make
    stop_min_images: int = Field(3, ge=1)

"""The naive-untargeted planner (NA baseline): uniform, seeded, same budget, no insight."""

from __future__ import annotations

from collections import Counter

import pytest

from atlantis.errors import ConfigError
from atlantis.plan.config import PlanConfig
from atlantis.plan.naive import naive_rows
from atlantis.plan.stage import load_plan, load_summary, plan
from atlantis.store.run import Run

from .conftest import TRAIN

CLASSES = [f"class{i}" for i in range(20)]


def test_rows_are_uniform_seeded_and_sum_to_the_budget() -> None:
    rows = naive_rows(CLASSES, 20_000, seed=3)
    counts = {r.class_name: r.count for r in rows}
    assert sum(counts.values()) == 20_000 and set(counts) == set(CLASSES)
    chi2 = sum((n - 1000) ** 2 / 1000 for n in counts.values())
    assert chi2 < 43.8  # chi-square, 19 dof, p = 0.001: uniform
    assert naive_rows(CLASSES, 20_000, seed=3) == rows
    assert naive_rows(CLASSES, 20_000, seed=4) != rows
    assert all(r.domain is None and r.step == "naive" and not r.is_new_class for r in rows)
    with pytest.raises(ConfigError, match="positive"):
        naive_rows(CLASSES, 0)


def test_the_stage_needs_no_insight(bare_run: Run) -> None:
    m = plan(bare_run, PlanConfig(planner="naive", budget=50, seed=1))
    assert m.stage == "plan/naive" and set(m.input_hashes) == {"ingest"}
    items = load_plan(bare_run, "naive")
    assert len(items) == 50 and {it.class_name for it in items} <= set(TRAIN)
    prompts = {it.class_name: it.description for it in items}  # one domain-free prompt each
    assert len({(it.class_name, it.description) for it in items}) == len(prompts)
    assert prompts["Arctic Tern"] == "a photo of an Arctic Tern"
    assert prompts["Mallard"] == "a photo of a Mallard"
    assert len({it.id for it in items}) == 50 and len({it.seed for it in items}) == 50
    assert all(len(it.reference_image_ids) == 3 for it in items)  # 3 real images per class
    s = load_summary(bare_run, "naive")
    assert s.planner == "naive" and s.llm is None and not s.is_language_model
    assert s.budget == 50 and "uniformly at random (seed 1)" in s.policy
    per_class = Counter(it.class_name for it in items)
    assert s.per_class == dict(per_class)


def test_the_naive_arm_copies_the_targeted_budget(run: Run) -> None:
    with pytest.raises(ConfigError, match="plan the targeted arm first"):
        plan(run, PlanConfig(planner="naive"))
    # the targeted arm sizes itself: 60 images, plus 12 (20 %) left for feedback rounds
    plan(run, PlanConfig(per_class_target=40))
    m = plan(run, PlanConfig(planner="naive"))  # the naive arm gets the whole budget
    assert m.counts["items"] == 72 and m.input_hashes["budget"] == "72"
    assert m.counts["new_class_items"] == 0
    # The naive arm ignores the keys it never reads: changing the LLM does not re-plan it.
    again = plan(run, PlanConfig(planner="naive", llm="openai"))
    assert again.finished_at == m.finished_at

"""Feedback rounds draw from the arm's budget: the reserve, the proportional cut, the stop."""

from __future__ import annotations

from atlantis.plan.budget import fit_rows
from atlantis.plan.config import PlanConfig
from atlantis.plan.schema import AllocationRow
from atlantis.plan.stage import load_plan, load_summary, plan, replan, reserve_count
from atlantis.store.run import Run

from .conftest import write_stage


def row(name: str, count: int, domain: str | None = None) -> AllocationRow:
    return AllocationRow(class_name=name, domain=domain, count=count, step="filter_feedback",
                         reason="test")  # fmt: skip


def test_fit_rows_cuts_in_proportion_exactly_to_the_room() -> None:
    rows = [row("a", 10), row("b", 5), row("c", 5), row("d", 1)]
    assert fit_rows(rows, 21) == rows and fit_rows(rows, 50) == rows
    cut = fit_rows(rows, 10)
    # exact shares 4.76, 2.38, 2.38, 0.48: floors 4, 2, 2, 0, leftovers to the largest parts
    assert [(r.class_name, r.count) for r in cut] == [("a", 5), ("b", 2), ("c", 2), ("d", 1)]
    assert sum(r.count for r in cut) == 10
    assert fit_rows(rows, 10) == cut  # deterministic
    two = fit_rows(rows, 2)
    assert sum(r.count for r in two) == 2 and all(r.count > 0 for r in two)  # zeros dropped
    assert fit_rows(rows, 0) == []


def test_reserve_count() -> None:
    assert reserve_count(100, 0.2) == 20 and reserve_count(100, 0.0) == 0
    assert reserve_count(None, 0.2) == 0 and reserve_count(1, 0.5) == 0
    assert reserve_count(2, 0.9) == 1  # round 0 always plans at least one image


def test_reserve_zero_is_the_whole_budget_in_round_0(run: Run) -> None:
    plan(run, PlanConfig(budget=40, feedback_reserve=0))
    s = load_summary(run, "targeted")
    assert s.n_items == s.budget == 40 and s.reserve == 0


def test_training_feedback_stays_within_the_budget(run: Run) -> None:
    plan(run, PlanConfig(budget=40, feedback_reserve=0.1))
    assert load_summary(run, "targeted").reserve == 4
    write_stage(run, "train/targeted", {"feedback.json": {
        "c_poor": ["Mallard", "Arctic Tern"], "per_class_r1": {"Mallard": 0.41, "Arctic Tern": 0.3},
        "k": 2, "tau": 0.5}})  # fmt: skip
    replan(run, PlanConfig(feedback_per_class=6), "targeted", "train")  # asks for 12
    s = load_summary(run, "targeted")
    assert len(load_plan(run, "targeted", rounds=[1])) == 4
    assert s.n_items == 40 == s.budget
    assert "asked for 12 images, 4 left of the budget of 40" in s.rounds[1].note
    # another training round finds the budget spent
    write_stage(run, "train/targeted", {"feedback.json": {
        "c_poor": ["Mallard"], "per_class_r1": {"Mallard": 0.2}, "k": 2, "tau": 0.5}})  # fmt: skip
    replan(run, PlanConfig(feedback_per_class=6), "targeted", "train")
    s = load_summary(run, "targeted")
    assert s.n_items == 40 and s.rounds[2].n_items == 0
    assert "budget spent" in s.rounds[2].note


def test_filtering_feedback_stays_within_the_budget(run: Run) -> None:
    plan(run, PlanConfig(budget=50))  # default reserve 0.2: 40 in round 0, 10 left
    s = load_summary(run, "targeted")
    assert (s.budget, s.reserve, s.n_items, s.rounds[0].n_items) == (50, 10, 40, 40)
    write_stage(run, "filter/targeted", {"stats.json": {"per_class": {
        "Arctic Tern": {"total": 20, "kept": 2, "kept_fraction": 0.1}}}})  # fmt: skip
    replan(run, PlanConfig(), "targeted", "filter")  # asks to replace the 18 removed
    s = load_summary(run, "targeted")
    assert s.rounds[1].n_items == len(load_plan(run, "targeted", rounds=[1])) == 10
    assert s.n_items == 50 == s.budget
    assert "asked for 18 images, 10 left of the budget of 50" in s.rounds[1].note


def test_reserve_is_in_round_0_config_hash_not_in_feedback_keys(run: Run) -> None:
    from atlantis.plan.config import FEEDBACK_KEYS, NAIVE_UNUSED_KEYS

    assert "feedback_reserve" not in FEEDBACK_KEYS and "feedback_reserve" in NAIVE_UNUSED_KEYS
    first = plan(run, PlanConfig(budget=40, feedback_reserve=0.25))
    assert load_summary(run, "targeted").n_items == 30
    again = plan(run, PlanConfig(budget=40, feedback_reserve=0.5))  # round 0 rebuilt
    assert again.config_hash != first.config_hash
    assert load_summary(run, "targeted").n_items == 20

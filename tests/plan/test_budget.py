"""Budget allocation on a hand-made insight: the order of the steps, exact sums, errors."""

from __future__ import annotations

from collections import Counter

import pytest

from atlantis.errors import ConfigError
from atlantis.plan.budget import allocate, capped, proportional, water_fill
from atlantis.plan.config import PolicyWeights

from .conftest import NEW, TRAIN, make_insight


def by_step(alloc) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for r in alloc.rows:
        out.setdefault(r.step, Counter())[(r.class_name, r.domain)] += r.count
    return out


def test_integer_splits_are_exact_and_deterministic() -> None:
    assert proportional(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert proportional(7, {"a": 0, "b": 0}) == {"a": 4, "b": 3}  # no weight: evenly
    assert proportional(0, {"a": 5}) == {"a": 0}
    split = proportional(1000, {"a": 3, "b": 5, "c": 11})
    assert sum(split.values()) == 1000 and split == {"a": 158, "b": 263, "c": 579}
    assert capped(100, {"a": 3, "b": 5}) == {"a": 3, "b": 5}  # enough: every need met
    assert capped(4, {"a": 3, "b": 5}) == {"a": 2, "b": 2}  # short: shared by need
    assert water_fill(5, {"x": 3, "y": 0, "z": 1}) == {"x": 0, "y": 3, "z": 2}
    tb = {"x": 5, "y": 0}
    assert water_fill(1, {"x": 0, "y": 0}, tb) == {"x": 0, "y": 1} and tb["y"] == 1


def test_under_represented_first_then_scarce_domains_then_new_classes() -> None:
    a = allocate(make_insight(), 100)
    assert sum(r.count for r in a.rows) == 100
    assert [r.step for r in a.rows] == sorted(
        (r.step for r in a.rows),
        key=["under_represented", "scarce_domains", "new_classes", "remainder"].index,
    )
    steps = by_step(a)
    # 1. the tern, 10 images vs the typical size 40 (the mean of the classes at or above
    # the median 35): +30, its empty domains first
    under = steps["under_represented"]
    assert {c for c, _ in under} == {"Arctic Tern"} and sum(under.values()) == 30
    assert under[("Arctic Tern", "sitting")] >= 10 and under[("Arctic Tern", "swimming")] >= 10
    assert a.rows[0].reason == "under-represented class (10 vs typical 40)"
    # 2. the albatross never swims: filled to its balanced count ceil(40 / 3) = 14
    assert steps["scarce_domains"] == Counter({("Laysan Albatross", "swimming"): 14})
    scarce = next(r for r in a.rows if r.step == "scarce_domains")
    assert scarce.reason == ("scarce domain 'swimming' for class Laysan Albatross "
                             "(0 of expected 13.333)")  # fmt: skip
    # 3. the new classes: 10% of the budget, evenly, over every domain
    new = steps["new_classes"]
    assert sum(new.values()) == 10 and {c for c, _ in new} == set(NEW)
    assert all(r.is_new_class for r in a.rows if r.step == "new_classes")
    assert {d for _, d in new} == {"flying", "sitting", "swimming"}
    # 4. the rest over the training classes
    assert sum(steps["remainder"].values()) == 46 and {c for c, _ in steps["remainder"]} == set(
        TRAIN
    )
    assert a.spent == {"under_represented": 30, "scarce_domains": 14, "new_classes": 10,
                       "remainder": 46}  # fmt: skip
    assert "1. under-represented classes" in a.explanation and "46 images" in a.explanation
    assert allocate(make_insight(), 100) == a  # deterministic


@pytest.mark.parametrize("budget", [1, 2, 7, 30, 99, 1000, 12345])
def test_always_sums_to_the_budget(budget: int) -> None:
    a = allocate(make_insight(), budget)
    assert sum(r.count for r in a.rows) == budget and all(r.count > 0 for r in a.rows)


def test_a_small_budget_goes_to_the_first_steps() -> None:
    a = allocate(make_insight(), 30)  # 3 kept for new classes; the 27 left to the tern
    assert a.spent == {"under_represented": 27, "new_classes": 3}
    a = allocate(make_insight(), 20, new_class_share=0.0)
    assert a.spent == {"under_represented": 20}


def test_policy_caps_a_step_and_the_remainder_can_be_uniform() -> None:
    a = allocate(make_insight(), 100, policy=PolicyWeights(under_represented=0.1))
    assert a.spent["under_represented"] == 10 and sum(a.spent.values()) == 100
    a = allocate(
        make_insight(),
        100,
        new_class_share=0.0,
        policy=PolicyWeights(under_represented=0, scarce_domains=0, remainder="uniform"),
    )
    assert a.spent == {"remainder": 100}
    assert set(a.per_class().values()) == {25}  # evenly over the four classes


def test_a_per_class_target_sizes_the_budget() -> None:
    a = allocate(make_insight(), None, per_class_target=40)
    # tern +30 and mallard +10 to 40 images, albatross swimming +14; new classes 10% of all
    assert a.spent == {"under_represented": 40, "scarce_domains": 14, "new_classes": 6}
    assert a.budget == 60 and "target 40" in a.rows[0].reason
    with pytest.raises(ConfigError, match="--budget N"):
        allocate(make_insight(), None)
    with pytest.raises(ConfigError, match="nothing to plan"):
        allocate(make_insight(scarce_cells=[]), None, per_class_target=5)


@pytest.mark.parametrize("budget", [0, -5])
def test_a_budget_must_be_positive(budget: int) -> None:
    with pytest.raises(ConfigError, match=f"positive number of images, got {budget}"):
        allocate(make_insight(), budget)


def test_requested_classes_are_checked_and_restrict_the_plan() -> None:
    with pytest.raises(ConfigError) as info:
        allocate(make_insight(), 10, classes=["Arctic Tern", "Dodo"])
    msg = str(info.value)
    assert "'Dodo' not in the data" in msg and "Laysan Albatross" in msg and "Snowy Owl" in msg
    a = allocate(make_insight(), 40, classes=["arctic tern", "SNOWY OWL"])  # names as words
    assert set(a.per_class()) == {"Arctic Tern", "Snowy Owl"} and sum(a.per_class().values()) == 40


def test_without_domains_the_cells_have_no_domain() -> None:
    a = allocate(make_insight(domains=[{"name": "all images"}], scarce_cells=[]), 50)
    assert {r.domain for r in a.rows} == {None} and sum(r.count for r in a.rows) == 50

"""The loop section and the loop's pure helpers: arms, seeds, variants, attack targets."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from atlantis.config import AtlantisConfig
from atlantis.pipeline.config import LoopConfig
from atlantis.pipeline.loop import (
    NO_FILTER,
    arm_trainings,
    attack_targets,
    filter_config,
    split_variant,
)
from atlantis.store.run import Run
from atlantis.train.config import TrainConfig


def test_loop_defaults_and_validation() -> None:
    loop = LoopConfig()
    assert loop.arms == ["baseline", "naive", "targeted"] and loop.seeds == 3
    assert LoopConfig(arms=["targeted", "baseline", "targeted"]).arms == ["targeted", "baseline"]
    assert LoopConfig(arms=["baseline", "oracle"]).arms == ["baseline", "oracle"]
    for bad in ({"arms": []}, {"arms": ["oracel"]}, {"seeds": 0}, {"armz": ["baseline"]}):
        with pytest.raises(ValidationError):
            LoopConfig(**bad)


def test_seeds_start_at_the_train_seed_and_only_extra_ones_get_a_tag() -> None:
    assert arm_trainings(LoopConfig(seeds=3), TrainConfig(seed=5)) == [
        (5, None), (6, "seed-6"), (7, "seed-7")]  # fmt: skip


def test_variants_and_attack_targets() -> None:
    assert split_variant("targeted") == ("targeted", None)
    assert split_variant("targeted/delta-1.5") == ("targeted", 1.5)
    assert split_variant("targeted/delta-inf") == ("targeted", math.inf)
    trainings = {"baseline": ["train/baseline", "train/baseline/seed-1"],
                 "naive": ["train/naive"],
                 "targeted/delta-1": ["train/targeted/delta-1"],
                 "targeted/delta-2": ["train/targeted/delta-2"]}  # fmt: skip
    assert attack_targets(trainings) == ["baseline", "targeted/delta-1"]
    assert attack_targets({"naive": ["train/naive"]}) == ["naive"]
    assert attack_targets({}) == []


def test_the_naive_arm_is_unfiltered_unless_asked(tmp_path) -> None:
    cfg = AtlantisConfig()
    assert filter_config(cfg, "naive") == NO_FILTER
    assert NO_FILTER.delta == math.inf and NO_FILTER.dedup_threshold is None
    cfg.loop = cfg.loop.model_copy(update={"naive_filter": True})
    assert filter_config(cfg, "naive") == cfg.filter
    cfg.loop = cfg.loop.model_copy(update={"filter_space": "baseline"})
    spec = filter_config(cfg, "targeted", Run(tmp_path)).embedder
    assert spec == f"checkpoint:{tmp_path / 'train' / 'baseline'}"


def test_budgets_must_increase_and_stay_within_the_plan() -> None:
    assert LoopConfig(budgets=[50, 100]).budgets == [50, 100]
    for bad, words in (
        ([100, 50], "strictly increasing: 50 at position 1 follows 100"),
        ([50, 50], "strictly increasing"),
        ([0, 10], "budgets\\[0\\] is 0"),
    ):
        with pytest.raises(ValidationError, match=words):
            LoopConfig(budgets=bad)
    from atlantis.pipeline.loop import budgets_problem

    cfg = AtlantisConfig.model_validate({"plan": {"budget": 80},
                                         "loop": {"budgets": [40, 120]}})  # fmt: skip
    problem = budgets_problem(cfg)
    assert problem and "120 exceeds the plan's budget 80" in problem
    assert "loop.budgets" in problem
    assert budgets_problem(cfg.model_copy(update={"loop": LoopConfig(budgets=[40, 80])})) is None
    assert budgets_problem(cfg.model_copy(update={"plan": cfg.plan.model_copy(
        update={"budget": None})}), planned=100) is not None  # fmt: skip
    only_real = cfg.model_copy(update={"loop": LoopConfig(arms=["baseline"], budgets=[40])})
    assert "needs the naive or the targeted arm" in (budgets_problem(only_real) or "")
    sweep = cfg.model_copy(update={"loop": LoopConfig(budgets=[40]),
                                   "filter": cfg.filter.model_copy(update={"delta": [1.0, 2.0]})})  # fmt: skip
    assert "one filter delta" in (budgets_problem(sweep) or "")

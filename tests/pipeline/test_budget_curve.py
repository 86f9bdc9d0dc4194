"""``loop.budgets`` and ``loop.match_kept`` end to end: nested subsets, equal steps, eta."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlantis.data.emoji import pool_captions_without, write_pool_truth
from atlantis.demo import POOL_CAPTIONS, POOL_TRUTH
from atlantis.filtering.stage import load_kept
from atlantis.pipeline.loop import run_loop
from atlantis.report.schema import load_report_json
from atlantis.store.run import Run
from tests.pipeline.test_loop import small_config


@pytest.fixture(scope="module")
def curved(emoji_slice: Path, tmp_path_factory: pytest.TempPathFactory):
    run = Run(tmp_path_factory.mktemp("curve") / "run")
    cfg = small_config(emoji_slice, run.root)
    cfg.loop = cfg.loop.model_copy(update={
        "arms": ["baseline", "naive", "targeted", "oracle"], "seeds": 1, "budgets": [6],
        "match_kept": True, "attack": False, "synthetic_test_per_class": 0,
        "untrained_reference": False, "pool_truth": str(run.root / POOL_TRUTH)})  # fmt: skip
    pool_captions_without(emoji_slice, set(), run.root / POOL_CAPTIONS)
    write_pool_truth(emoji_slice, run.root / POOL_TRUTH)
    result = run_loop(run, cfg, progress=False, say=lambda s: None)
    return run, cfg, result


def _train_ids(run: Run, cfg, name: str) -> set[str]:
    """The synthetic images a train stage trained on, read back through its inputs."""
    from atlantis.pipeline.loop import arm_subset
    from atlantis.train.stage import split_records

    arm = name.split("/")[1]
    budget = int(name.split("budget-")[1].split("/")[0]) if "budget-" in name else None
    splits, _ = split_records(run, arm, None, arm_subset(run, cfg, arm, budget))
    return {r.id for r in splits["train"] if r.source != "real"}


def test_each_budget_trains_a_nested_subset_with_the_same_steps(curved) -> None:
    run, cfg, result = curved
    assert set(result.curves) == {"naive", "targeted"}
    steps = set()
    for arm in ("naive", "targeted"):
        small = result.curves[arm][6]
        assert small == [f"train/{arm}/budget-6"]
        full = result.trainings[arm][0]
        small_ids = _train_ids(run, cfg, small[0])
        assert small_ids < _train_ids(run, cfg, full)
        assert len(small_ids) <= 6
        for name in (small[0], full):
            metrics = json.loads((run.stage_dir(name) / "metrics.json").read_text())
            steps.add(metrics["optimizer_steps"])
    assert len(steps) == 1  # every arm and budget: the baseline's step count


def test_match_kept_gives_naive_the_targeted_kept_count(curved) -> None:
    run, _, result = curved
    kept = len(load_kept(run, "targeted"))
    assert run.require(result.trainings["naive"][0]).counts["synthetic_images"] == kept
    targeted_small = run.require("train/targeted/budget-6").counts["synthetic_images"]
    assert run.require("train/naive/budget-6").counts["synthetic_images"] == targeted_small


def test_report_has_the_curve_eta_and_the_oracle_count(curved) -> None:
    _, cfg, result = curved
    data = load_report_json(result.report_json)
    curve = data.budget_curve
    assert curve is not None and curve.match_kept
    assert [p.budget for p in curve.arms["targeted"]] == [6, cfg.plan.budget]
    assert curve.baseline is not None
    assert [e.budget for e in curve.eta] == [6, cfg.plan.budget]
    for e in curve.eta:
        assert e.ratio >= 0 and (e.beyond or e.naive_budget <= cfg.plan.budget)
    oracle = data.arm("oracle")
    assert oracle is not None and oracle.synthetic_images.restored > 0
    html = result.report_html.read_text()
    assert "Budget curve and efficiency gain" in html and "eta" in html
    assert "real images restored" in html


def test_a_second_run_redoes_nothing(curved) -> None:
    run, cfg, _ = curved
    before = {m.stage: m.finished_at for m in run.stages() if m.status == "done"}
    run_loop(run, cfg, progress=False, say=lambda s: None)
    after = {m.stage: m.finished_at for m in run.stages() if m.status == "done"}
    assert {k: v for k, v in after.items() if k in before} == before


def test_fidelity_against_the_pool_truth(curved) -> None:
    """Every sourced image is judged by the truth file, and the counts add up."""
    run, _, result = curved
    data = load_report_json(result.report_json)
    assert set(data.fidelity) == {"naive", "targeted"}
    for arm, fid in data.fidelity.items():
        assert fid.basis == "truth" and fid.unmatched == 0
        c = fid.confusion
        assert c is not None
        assert c.right_kept + c.wrong_kept == fid.kept.n == len(load_kept(run, arm))
        assert fid.sourced.n == c.right_kept + c.right_removed + c.wrong_kept + c.wrong_removed
    assert "Source fidelity" in result.report_html.read_text()

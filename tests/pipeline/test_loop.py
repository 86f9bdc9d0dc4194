"""``run_loop`` / ``atlantis run`` end to end on real emoji: every arm, kill and resume, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.config import AtlantisConfig
from atlantis.data.emoji import pool_captions_without
from atlantis.demo import POOL_CAPTIONS, demo_config
from atlantis.pipeline import loop as loop_module
from atlantis.pipeline.loop import run_loop
from atlantis.report.schema import load_report_json
from atlantis.store.run import Run
from atlantis.train.config import preset


class Killed(RuntimeError):
    """Stands in for a kill in the middle of the loop."""


def small_config(root: Path, out: Path) -> AtlantisConfig:
    cfg = demo_config(root, out, image_size=64, budget=12, seeds=2)
    cfg.train = preset("demo", image_size=64, epochs=2, batch_size=16, m_per_class=2,
                       tensorboard=False)  # fmt: skip
    cfg.attack = cfg.attack.model_copy(update={"steps": [1, 2], "eps": [0.05], "max_queries": 6})
    # the whole-loop tests measure fidelity by the proxy; test_budget_curve by a truth file
    cfg.loop = cfg.loop.model_copy(update={"pool_truth": None, "budgets": [],
                                           "match_kept": False,
                                           "arms": ["baseline", "naive", "targeted"]})  # fmt: skip
    return cfg


@pytest.fixture(scope="module")
def finished(emoji_slice: Path, tmp_path_factory: pytest.TempPathFactory):
    """A loop killed while training the targeted arm, then resumed to the end."""
    out = tmp_path_factory.mktemp("loop") / "run"
    run = Run(out)
    cfg = small_config(emoji_slice, run.root)
    pool_captions_without(emoji_slice, set(), run.root / POOL_CAPTIONS)
    real_train_arm = loop_module.train_arm

    def dying(run_, cfg_, arm, **kw):
        if arm == "targeted":
            raise Killed("killed while training the targeted arm")
        return real_train_arm(run_, cfg_, arm, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(loop_module, "train_arm", dying)
    with pytest.raises(Killed):
        run_loop(run, cfg, progress=False, say=lambda s: None)
    mp.undo()
    before = {m.stage: m.finished_at for m in run.stages() if m.status == "done"}
    messages: list[str] = []
    result = run_loop(run, cfg, progress=False, say=messages.append)
    return run, cfg, result, before, messages


def test_every_arm_trains_every_seed(finished) -> None:
    run, _, result, _, _ = finished
    assert set(result.trainings) == {"baseline", "naive", "targeted"}
    for arm, names in result.trainings.items():
        assert names == [f"train/{arm}", f"train/{arm}/seed-1"]
        seeds = [run.require(n).config["seed"] for n in names]
        assert seeds == [0, 1]


def test_resume_reuses_what_finished_before_the_kill(finished) -> None:
    run, _, _, before, messages = finished
    assert "train/baseline" in before and "train/targeted" not in before
    for stage, stamp in before.items():
        assert run.require(stage).finished_at == stamp, f"{stage} was redone after the kill"
    assert any("train/targeted (seed 0): done" in m for m in messages)


def test_arms_get_the_same_budget_and_only_targeted_is_filtered(finished) -> None:
    run, cfg, _, _, _ = finished
    naive = json.loads((run.stage_dir("filter/naive") / "stats.json").read_text())
    assert naive["totals"]["kept"] == naive["totals"]["synthetic"] > 0  # NA: no ORDC
    assert run.require("plan/naive").counts["items"] == cfg.plan.budget
    summary = json.loads((run.stage_dir("plan/targeted") / "plan.json").read_text())
    # round 0 leaves plan.feedback_reserve for the feedback round; together never more
    reserve = round(cfg.plan.feedback_reserve * cfg.plan.budget)
    assert summary["reserve"] == reserve and summary["budget"] == cfg.plan.budget
    assert summary["rounds"][0]["n_items"] == cfg.plan.budget - reserve
    assert summary["n_items"] <= cfg.plan.budget
    assert sum(r["source"] == "filter" for r in summary["rounds"]) <= 1 + 1  # round 0 + 1


def test_the_scenario_drops_only_training_images_of_the_cut_classes(finished) -> None:
    run, _, _, _, _ = finished
    dropped = [json.loads(x) for x in
               (run.stage_dir("ingest") / "dropped.jsonl").read_text().splitlines()]  # fmt: skip
    scenario = json.loads((run.stage_dir("ingest") / "scenario.json").read_text())
    cut = set(scenario["classes"])
    assert scenario["kind"] == "class_imbalance" and cut
    assert dropped and all(r["split"] == "train" and r["label"] in cut for r in dropped)


def test_report_has_the_comparison_robustness_and_cost(finished) -> None:
    run, _, result, _, _ = finished
    data = load_report_json(result.report_json)
    assert [a.name for a in data.arms] == ["untrained", "baseline", "naive", "targeted"]
    assert data.arm("untrained").summary["R@1"].n == 1  # the reference row: no training
    for arm in data.arms[1:]:
        assert arm.summary["R@1"].n == 2 and 0 <= arm.summary["R@1"].mean <= 1
    xs = run.read_manifest("testset")
    assert xs is not None  # X_s was attempted; on this slice it may be too small to score
    if xs.status == "done":
        assert set(data.synthetic_test or {}) == {"baseline", "naive", "targeted"}
    assert data.arm("naive").synthetic_images.kept > 0
    # no truth file: fidelity is the proxy in the baseline model's space, and says so
    assert set(data.fidelity) == {"naive", "targeted"}
    for arm, fid in data.fidelity.items():
        assert fid.basis == "proxy" and "proxy" in fid.note
        assert fid.sourced.n + fid.unmatched == data.arm(arm).synthetic_images.generated
        assert fid.sourced.domain_match is None
    assert data.adversarial is not None and data.adversarial.queries == 6
    assert {r.steps for r in data.adversarial.rows} == {1, 2}
    assert set(data.adversarial.clean_r1) == {"baseline", "targeted"}
    assert data.cost is not None and data.cost.total_seconds > 0
    assert any("not a language model" in n for n in data.notes)
    html = result.report_html.read_text()
    for section in ("Recall", "adversarial", "targeted", "naive"):
        assert section.lower() in html.lower()


def test_a_finished_loop_runs_again_without_redoing_anything(finished) -> None:
    run, cfg, _, _, _ = finished
    stamps = {m.stage: m.finished_at for m in run.stages() if m.status == "done"}
    plan_rounds = len(
        json.loads((run.stage_dir("plan/targeted") / "plan.json").read_text())["rounds"]
    )
    run_loop(run, cfg, progress=False, say=lambda s: None)
    assert {m.stage: m.finished_at for m in run.stages() if m.status == "done"} == stamps
    rounds = json.loads((run.stage_dir("plan/targeted") / "plan.json").read_text())["rounds"]
    assert len(rounds) == plan_rounds  # no feedback round added twice


def test_run_command_refuses_unknown_keys_with_the_valid_ones(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"loop": {"armz": ["baseline"]}}))
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2
    assert "armz" in res.output and "seeds" in res.output
    assert not (tmp_path / "run").exists()  # nothing started


def test_ordc_in_the_baseline_models_space(emoji_slice: Path, tmp_path: Path) -> None:
    """``loop.filter_space: baseline``: the baseline trains first and ORDC reads its model."""
    run = Run(tmp_path / "run")
    cfg = small_config(emoji_slice, run.root)
    cfg.loop = cfg.loop.model_copy(update={"arms": ["baseline", "targeted"], "seeds": 1,
                                           "filter_space": "baseline", "attack": False,
                                           "report": False, "train_feedback_rounds": 1,
                                           "synthetic_test_per_class": 0})  # fmt: skip
    cfg.train = cfg.train.model_copy(update={"feedback_tau": 1.0})  # every class is "poor"
    pool_captions_without(emoji_slice, set(), run.root / POOL_CAPTIONS)
    result = run_loop(run, cfg, progress=False, say=lambda s: None)
    # Algorithm 2 ran once: a "train" round in the plan, and the arm retrained on its images
    rounds = json.loads((run.stage_dir("plan/targeted") / "plan.json").read_text())["rounds"]
    assert [r["source"] for r in rounds].count("train") == 1
    trained = run.require("train/targeted")
    assert trained.input_hashes["filter"] == run.output_hash("filter/targeted")
    run_loop(run, cfg, progress=False, say=lambda s: None)  # resumed: no second round
    again = json.loads((run.stage_dir("plan/targeted") / "plan.json").read_text())["rounds"]
    assert len(again) == len(rounds)
    assert run.require("train/targeted").finished_at == trained.finished_at
    assert set(result.trainings) == {"baseline", "targeted"}
    stats = json.loads((run.stage_dir("filter/targeted") / "stats.json").read_text())
    assert stats["embedder"] == f"checkpoint:{run.stage_dir('train/baseline')}"
    assert run.require("train/baseline").finished_at <= run.require("filter/targeted").started_at
    assert result.report_html is None


def test_run_command_runs_a_config_file_end_to_end(emoji_slice: Path, tmp_path: Path) -> None:
    from atlantis.config import save_config

    out = tmp_path / "run"
    cfg = small_config(emoji_slice, out)
    cfg.loop = cfg.loop.model_copy(update={"arms": ["baseline", "targeted"], "seeds": 1,
                                           "synthetic_test_per_class": 0})  # fmt: skip
    pool_captions_without(emoji_slice, set(), out / POOL_CAPTIONS)
    save_config(cfg, tmp_path / "small.yaml")
    res = CliRunner().invoke(app, ["run", str(tmp_path / "small.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "targeted" in res.output and "report:" in res.output
    assert (out / "report" / "report.html").exists()
    assert (out / "config.yaml").exists()
    assert Run(out).require("attack").counts["arms"] == 2

"""The ``oracle`` arm on the command line: ``atlantis train --arm oracle`` and ``run --check``.

An oracle restores what a scenario withheld; without a scenario there is nothing to
restore, and both commands must say so in one line instead of training a second baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.config import DataConfig
from atlantis.data.ingest import ingest
from atlantis.store.run import Run
from tests.train.conftest import make_dataset

runner = CliRunner()
SCENARIO = {"kind": "class_imbalance", "n_classes": 2, "keep": 2}
TINY = ["--set", "train.backbone=timm:test_vit", "--set", "train.pretrained=false",
        "--set", "train.image_size=32", "--set", "train.embedding_dim=16",
        "--set", "train.batch_size=12", "--set", "train.m_per_class=3",
        "--set", "train.epochs=1", "--set", "train.device=cpu",
        "--set", "train.tensorboard=false"]  # fmt: skip


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def error_line(res) -> str:
    """The one ``error:`` line of a clear error (exit 2, no traceback)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def _ingested(tmp_path: Path, scenario: dict | None) -> Run:
    run = Run(tmp_path / "run")
    root = make_dataset(tmp_path / "data", per_class=6)
    ingest(run, DataConfig(format="imagefolder", root=str(root), split="zsl",
                           scenario=scenario or {}))  # fmt: skip
    return run


def test_train_oracle_without_a_scenario_is_one_line_saying_why(tmp_path: Path) -> None:
    run = _ingested(tmp_path, None)
    line = error_line(invoke("train", run.root, "--arm", "oracle", *TINY))
    assert "oracle arm restores the training images the scenario withheld" in line
    assert "data.scenario.kind is none" in line and "use the baseline arm" in line
    assert not run.stage_dir("train/oracle").exists()


def test_train_oracle_with_a_scenario_trains_it(tmp_path: Path) -> None:
    run = _ingested(tmp_path, SCENARIO)
    res = invoke("train", run.root, "--arm", "oracle", *TINY)
    assert res.exit_code == 0, res.output
    assert "train/oracle: best epoch" in res.output and "R@1" in res.output
    metrics = json.loads((run.stage_dir("train/oracle") / "metrics.json").read_text())
    assert metrics["arm"] == "oracle" and "test_recall" in metrics


def _config(tmp_path: Path, **data: object) -> Path:
    root = make_dataset(tmp_path / "data", per_class=3)
    cfg = {"data": {"format": "imagefolder", "root": str(root), **data},
           "caption": {"captioner": "metadata"}, "insight": {"llm": "rules"},
           "train": {"backbone": "timm:test_vit", "pretrained": False, "image_size": 32},
           "loop": {"arms": ["baseline", "oracle"], "seeds": 1}}  # fmt: skip
    path = tmp_path / "oracle.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_and_run_check_refuse_an_oracle_arm_without_a_scenario(tmp_path: Path) -> None:
    res = invoke("run", _config(tmp_path), "--out", tmp_path / "r", "--check")
    assert "1 problem(s)" in error_line(res)
    problems = [line.strip() for line in res.output.splitlines() if line.strip().startswith("- ")]
    assert len(problems) == 1 and problems[0].startswith("- loop.arms: the oracle arm"), problems
    assert "use the baseline arm" in problems[0]
    assert not (tmp_path / "r").exists()
    line = error_line(invoke("run", _config(tmp_path), "--out", tmp_path / "r"))
    assert "loop.arms: the oracle arm" in line and "data.scenario.kind is none" in line
    assert not (tmp_path / "r").exists()  # refused before the run folder was written
    ok = invoke("run", _config(tmp_path, scenario=SCENARIO), "--out", tmp_path / "r", "--check")
    assert ok.exit_code == 0 and ok.output.startswith("OK: "), ok.output

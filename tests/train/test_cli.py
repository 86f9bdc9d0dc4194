"""``atlantis train`` on the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from atlantis.cli import train_cmd  # noqa: F401 - registers the command
from atlantis.cli.main import app
from atlantis.store.run import Run

TINY = ["--set", "train.backbone=timm:test_vit", "--set", "train.pretrained=false",
        "--set", "train.image_size=32", "--set", "train.embedding_dim=16",
        "--set", "train.batch_size=12", "--set", "train.m_per_class=3",
        "--set", "train.lr=0.001", "--set", "train.device=cpu",
        "--set", "train.tensorboard=false"]  # fmt: skip


def test_train_prints_epochs_and_the_test_recall(run: Run) -> None:
    runner = CliRunner()
    paused = runner.invoke(app, ["train", str(run.root), "--set", "train.epochs=2", *TINY,
                                 "--epochs-this-call", "1"])  # fmt: skip
    assert paused.exit_code == 0, paused.output
    assert "epoch 1/2" in paused.output and "run again to resume" in paused.output
    done = runner.invoke(app, ["train", str(run.root), "--set", "train.epochs=2", *TINY])
    assert done.exit_code == 0, done.output
    assert "epoch 2/2" in done.output and "epoch 1/2" not in done.output  # resumed
    assert "test split" in done.output and "R@1" in done.output
    assert f"checkpoint:{run.stage_dir('train/baseline')} --distance poincare" in done.output
    metrics = json.loads((run.stage_dir("train/baseline") / "metrics.json").read_text())
    assert metrics["best_epoch"] in (0, 1, 2)


def test_bad_keys_and_presets_are_one_line_errors(run: Run) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["train", str(run.root), "--set", "train.lrr=1"])
    assert bad.exit_code == 2 and "train.lrr" in bad.output and "train.head_lr" in bad.output
    preset = runner.invoke(app, ["train", str(run.root), "--preset", "fast"])
    assert preset.exit_code == 2 and "valid: dino, demo" in preset.output

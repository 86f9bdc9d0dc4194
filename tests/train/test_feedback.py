"""Algorithm 2 (training feedback) on hand-made per-class R@1."""

from __future__ import annotations

import json

import pytest

from atlantis.errors import StageError
from atlantis.store.run import Run
from atlantis.train.feedback import (
    feedback_report,
    load_feedback,
    poor_classes,
    select_best_arm,
    write_feedback,
)

PER_CLASS = {"albatross": 0.9, "oriole": 0.2, "jay": 0.45, "wren": 0.45, "gull": 0.7}


def test_k_worst_classes_below_tau_in_order() -> None:
    assert poor_classes(PER_CLASS, k=2, tau=0.5) == ["oriole", "jay"]  # ties by name
    assert poor_classes(PER_CLASS, k=5, tau=0.5) == ["oriole", "jay", "wren"]
    assert poor_classes(PER_CLASS, k=5, tau=0.1) == []
    assert poor_classes(PER_CLASS, k=0, tau=1.0) == []
    assert poor_classes(PER_CLASS, k=10, tau=1.0) == ["oriole", "jay", "wren", "gull", "albatross"]
    with pytest.raises(ValueError):
        poor_classes(PER_CLASS, k=-1, tau=0.5)


def test_report_and_files(tmp_path) -> None:
    run = Run(tmp_path)
    with run.stage("train/baseline", {}) as ctx:
        report = feedback_report(PER_CLASS, 3, 0.5, best_epoch=7)
        write_feedback(ctx.dir / "feedback.json", report)
        (ctx.dir / "metrics.json").write_text(json.dumps({"best_val_R@1": 0.6}))
        ctx.add_output(ctx.dir / "feedback.json")
    loaded = load_feedback(run)
    assert loaded["c_poor"] == ["oriole", "jay", "wren"] and loaded["k"] == 3
    assert loaded["tau"] == 0.5 and loaded["best_epoch"] == 7
    assert list(loaded["per_class_r1"]) == sorted(PER_CLASS)
    with pytest.raises(StageError, match="atlantis train"):
        load_feedback(run, "targeted")


def test_best_arm_by_validation_recall(tmp_path) -> None:
    run = Run(tmp_path)
    for arm, r1 in (("delta-1.0", 0.61), ("delta-1.5", 0.64), ("delta-inf", None)):
        with run.stage(f"train/{arm}", {}) as ctx:
            (ctx.dir / "metrics.json").write_text(json.dumps({"best_val_R@1": r1}))
    assert select_best_arm(run, ["delta-1.0", "delta-1.5", "delta-inf"]) == "delta-1.5"
    with pytest.raises(StageError, match="validation R@1"):
        select_best_arm(run, ["delta-inf"])

"""collect: per-seed metrics from train stages become the report's paired statistics.

Built on hand-written train stages (manifest + metrics.json), so it needs no training: the
loop's end-to-end test covers the real files.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from atlantis.pipeline import collect
from atlantis.report.schema import ReportData, load_report_json, save_report_json
from atlantis.store.run import Run

# R@1 per arm and seed, and per-class R@1 ("a" follows R@1, "b" is flat).
R1 = {"baseline": [0.60, 0.62, 0.61], "naive": [0.61, 0.62, 0.62], "targeted": [0.64, 0.65, 0.66]}


def _train(run: Run, arm: str, seed: int, r1: float, extra: dict[str, Any]) -> str:
    name = f"train/{arm}/seed-{seed}"
    with run.stage(name, {"seed": seed}) as ctx:
        metrics = {"test_recall": {"R@1": r1, "R@2": r1 + 0.1}, "best_epoch": 2,
                   "best_val_R@1": r1, "test": {"MAP@R": r1 / 2,
                                               "per_class_R@1": {"a": r1, "b": 0.5}}, **extra}  # fmt: skip
        (ctx.dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return name


@pytest.fixture
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReportData:
    run = Run(tmp_path / "run")
    run.root.mkdir(parents=True)
    monkeypatch.setattr(collect, "_kept", lambda run, variant: [])
    monkeypatch.setattr(
        "atlantis.plan.stage.load_summary", lambda run, arm: SimpleNamespace(n_items=40)
    )
    arms = []
    for arm, values in R1.items():
        if arm != "baseline":
            with run.stage(f"generate/{arm}", {}) as ctx:
                ctx.counts["images"] = 40
        # Steps as the train side records them; one malformed value is read as unknown.
        names = [_train(run, arm, s, v, {"optimizer_steps": 300 if arm != "naive" or s else "lots",
                                         "images_seen": 9600})
                 for s, v in enumerate(values)]  # fmt: skip
        arms.append(collect._arm(run, arm, names))
    return ReportData(arms=arms)


def test_seeds_carry_per_class_r1_and_optimisation_counts(report: ReportData) -> None:
    naive = report.arm("naive")
    assert naive is not None
    assert [s.optimizer_steps for s in naive.seeds] == [None, 300, 300]
    assert {s.images_seen for s in naive.seeds} == {9600}
    assert naive.seeds[2].per_class_r1 == {"a": 0.62, "b": 0.5}


def test_report_json_carries_the_paired_differences(report: ReportData, tmp_path: Path) -> None:
    raw = json.loads(save_report_json(report, tmp_path / "report.json").read_text())
    pairs = [(p["a"], p["b"]) for p in raw["paired"] if p["metric"] == "R@1"]
    assert pairs == [("targeted", "naive"), ("targeted", "baseline"), ("naive", "baseline")]
    tn = next(
        p for p in raw["paired"] if (p["a"], p["b"], p["metric"]) == ("targeted", "naive", "R@1")
    )
    assert tn["seeds"] == [0, 1, 2] and tn["diffs"] == pytest.approx([0.03, 0.03, 0.04])
    assert tn["mean"] == pytest.approx(0.03333, abs=1e-4) and tn["n"] == 3
    assert tn["lo"] > 0 and tn["significant"] is True
    nb = next(
        p for p in raw["paired"] if (p["a"], p["b"], p["metric"]) == ("naive", "baseline", "R@1")
    )
    assert nb["lo"] < 0 < nb["hi"] and nb["significant"] is False  # diffs 0.01, 0, 0.01
    assert {p["metric"] for p in raw["paired"]} == {"R@1", "R@2", "MAP@R"}
    # Per-class: "a" moves with R@1, "b" never moves (a zero-width interval at 0).
    cls = raw["per_class_paired"]["targeted"]
    assert cls["a"]["significant"] is True and cls["b"] == pytest.approx(
        {"n": 3, "mean": 0.0, "lo": 0.0, "hi": 0.0, "confidence": 0.95, "significant": False}
    )
    assert load_report_json(tmp_path / "report.json") == report


def test_count_reads_defensively() -> None:
    assert [collect._count(v) for v in (12, 12.0, -1, 1.5, "12", None, True, float("inf"))] == [
        12, 12, None, None, None, None, None, None]  # fmt: skip

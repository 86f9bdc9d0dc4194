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
from atlantis.report import schema
from atlantis.report.html import headroom_sentence
from atlantis.report.schema import (
    InsightSummary,
    ReportData,
    headroom,
    load_report_json,
    save_report_json,
)
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
        "atlantis.plan.stage.load_summary", lambda run, arm: SimpleNamespace(n_items=40, budget=40)
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


# Headroom and affected classes. Overall R@1 per seed: oracle - baseline = 0.10, 0.09, 0.11.
H_R1 = {
    "baseline": [0.60, 0.62, 0.61],
    "naive": [0.61, 0.63, 0.62],  # mean +0.01 over the baseline: 10 % of the headroom
    "targeted": [0.65, 0.67, 0.66],  # +0.05: 50 %
    "oracle": [0.70, 0.71, 0.72],
}
# Per-class R@1 at seed 0 of the touched classes "a", "b" (each seed adds 0.01 to both);
# the rest ("c", "d", and "e", which the scenario lists but took nothing from) is 0.8.
H_AFFECTED = {"baseline": (0.2, 0.4), "naive": (0.3, 0.5), "targeted": (0.5, 0.7),
              "oracle": (0.6, 0.8)}  # fmt: skip
SCENARIO = {"kind": "domain_scarcity", "classes": ["a", "b", "e"],
            "per_class": {"a": {"dropped": 5}, "b": {"dropped": 3}, "e": {"dropped": 0}}}  # fmt: skip


def _headroom_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, r1: dict[str, list[float]],
                  scenario: dict[str, Any] | None) -> tuple[Run, ReportData]:  # fmt: skip
    """Hand-written ingest (with ``scenario.json``) and train stages of four arms."""
    run = Run(tmp_path / "run")
    run.root.mkdir(parents=True)
    monkeypatch.setattr(collect, "_kept", lambda run, variant: [])
    monkeypatch.setattr(
        "atlantis.plan.stage.load_summary", lambda run, arm: SimpleNamespace(n_items=40, budget=40)
    )
    with run.stage("ingest", {}) as ctx:
        if scenario is not None:
            path = ctx.add_output(ctx.dir / "scenario.json")
            path.write_text(json.dumps(scenario), encoding="utf-8")
    arms = []
    for arm, values in r1.items():
        if arm in ("naive", "targeted"):
            with run.stage(f"generate/{arm}", {}) as ctx:
                ctx.counts["images"] = 40
        names = []
        for s, v in enumerate(values):
            a, b = (x + 0.01 * s for x in H_AFFECTED[arm])
            name = f"train/{arm}/seed-{s}"
            with run.stage(name, {"seed": s}) as ctx:
                per_class = {"a": a, "b": b, "c": 0.8, "d": 0.8, "e": 0.8}
                metrics = {"test_recall": {"R@1": v}, "test": {"per_class_R@1": per_class}}
                (ctx.dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
            names.append(name)
        arms.append(collect._arm(run, arm, names))
    return run, ReportData(arms=arms)


def _fill(run: Run, data: ReportData, split: str) -> ReportData:
    """What collect() adds to the report: affected-class R@1, then the headroom."""
    cfg = SimpleNamespace(data=SimpleNamespace(split=split))
    data.affected_classes = collect._affected(run, cfg, data)  # type: ignore[arg-type]
    data.headroom = headroom(data.arms, data.baseline, data.affected_classes)
    return data


def test_headroom_shares_and_affected_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, data = _headroom_run(tmp_path, monkeypatch, H_R1, SCENARIO)
    data = _fill(run, data, "fsl")
    aff = data.affected_classes
    assert aff is not None and aff.source == "scenario" and aff.applicable
    assert aff.classes == ["a", "b"] and aff.test_classes == ["a", "b"] and aff.n_rest == 3
    # Seed s of an arm: mean(a, b) = mean(H_AFFECTED) + 0.01 s, so std 0.01 over 3 seeds.
    for arm, (a, b) in H_AFFECTED.items():
        stat = aff.affected[arm]
        assert (stat.mean, stat.std, stat.n) == pytest.approx(((a + b) / 2 + 0.01, 0.01, 3))
        assert (aff.rest[arm].mean, aff.rest[arm].std) == pytest.approx((0.8, 0.0))
    h = data.headroom
    assert h is not None and h.has_headroom is True and h.rule == schema.RULE_PAIRED
    o = h.overall
    assert (o.mean, o.std, o.n) == pytest.approx((0.10, 0.01, 3))
    assert o.paired is not None and o.paired.significant and o.within_noise is False
    assert o.paired.lo == pytest.approx(0.10 - 4.302653 * 0.01 / 3**0.5, abs=1e-6)
    assert o.shares == pytest.approx({"naive": 0.1, "targeted": 0.5})
    a = h.affected
    assert a is not None and (a.mean, a.std) == pytest.approx((0.40, 0.0))
    assert a.shares == pytest.approx({"naive": 0.25, "targeted": 0.75})
    raw = json.loads(save_report_json(data, tmp_path / "report.json").read_text())
    assert raw["headroom"]["overall"]["shares"] == pytest.approx({"naive": 0.1, "targeted": 0.5})
    assert raw["affected_classes"]["affected"]["oracle"]["mean"] == pytest.approx(0.71)
    assert load_report_json(tmp_path / "report.json") == data
    text = headroom_sentence(h)
    assert "+10.0 points R@1 over baseline" in text and "targeted recovers 50 %" in text
    assert "naive recovers 10 %" in text and "cannot show" not in text


def test_no_headroom_says_the_scenario_cannot_show_an_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flat = {**H_R1, "oracle": [0.61, 0.61, 0.615]}  # diffs +0.01, -0.01, +0.005
    run, data = _headroom_run(tmp_path, monkeypatch, flat, SCENARIO)
    h = _fill(run, data, "fsl").headroom
    assert h is not None and h.has_headroom is False and h.overall.within_noise is True
    p = h.overall.paired
    assert p is not None and p.lo is not None and p.hi is not None and p.lo < 0 < p.hi
    assert h.overall.shares == {"naive": None, "targeted": None}  # no ratio over noise
    text = headroom_sentence(h)
    assert "within the seeds' noise" in text
    assert "This scenario cannot show an augmentation effect" in text
    assert "On the affected classes alone the oracle gains +40.0 points" in text


def test_single_seed_headroom_is_undecided(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, data = _headroom_run(tmp_path, monkeypatch, {k: v[:1] for k, v in H_R1.items()}, SCENARIO)
    h = _fill(run, data, "fsl").headroom
    assert h is not None and h.has_headroom is None and h.rule == schema.RULE_UNKNOWN
    assert h.overall.paired is not None and h.overall.paired.lo is None
    assert h.overall.shares == pytest.approx({"naive": 0.1, "targeted": 0.5})
    assert "undecided" in headroom_sentence(h)


def test_zsl_affected_classes_are_not_applicable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, data = _headroom_run(tmp_path, monkeypatch, H_R1, SCENARIO)
    data = _fill(run, data, "zsl")
    aff = data.affected_classes
    assert aff is not None and not aff.applicable and not aff.affected and not aff.rest
    assert aff.note == (
        "not applicable (zsl: the scenario touches training classes, the test split has "
        "other classes)"
    )
    assert data.headroom is not None and data.headroom.affected is None
    assert data.headroom.overall.mean == pytest.approx(0.10)


def test_without_a_scenario_the_insight_classes_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_oracle = {k: v for k, v in H_R1.items() if k != "oracle"}
    run, data = _headroom_run(tmp_path, monkeypatch, no_oracle, None)
    data.insight = InsightSummary(under_represented=["b", "c"])
    data = _fill(run, data, "fsl")
    aff = data.affected_classes
    assert aff is not None and aff.source == "insight" and aff.test_classes == ["b", "c"]
    # Seed s of the baseline: mean(b, c) = (0.4 + 0.01 s + 0.8) / 2; the rest a, d, e.
    assert aff.affected["baseline"].mean == pytest.approx((0.41 + 0.8) / 2)
    assert aff.rest["baseline"].mean == pytest.approx((0.21 + 0.8 + 0.8) / 3)
    assert data.headroom is None  # no oracle arm, no headroom

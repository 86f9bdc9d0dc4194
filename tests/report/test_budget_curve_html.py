"""The budget curve section: chart, table and eta in words, from a hand-made curve."""

from __future__ import annotations

from pathlib import Path

from atlantis.report.html import eta_sentence, render_report
from atlantis.report.schema import (
    ArmResult,
    BudgetCurve,
    CurvePoint,
    EtaPoint,
    ReportData,
    SeedResult,
    SyntheticImages,
)


def seeds(*r1: float) -> list[SeedResult]:
    return [SeedResult(seed=i, recall={"R@1": v}) for i, v in enumerate(r1)]


def curve() -> BudgetCurve:
    return BudgetCurve(
        baseline=ArmResult(name="baseline", seeds=seeds(0.50, 0.52)).summary["R@1"],
        arms={"naive": [CurvePoint(budget=100, images=100, seeds=seeds(0.53, 0.55)),
                        CurvePoint(budget=200, images=200, seeds=seeds(0.56, 0.58))],
              "targeted": [CurvePoint(budget=100, images=80, seeds=seeds(0.565, 0.575)),
                           CurvePoint(budget=200, images=150, seeds=seeds(0.60, 0.62))]},
        eta=[EtaPoint(budget=100, targeted_r1=0.57, naive_budget=200.0, ratio=2.0),
             EtaPoint(budget=200, targeted_r1=0.61, naive_budget=200.0, ratio=1.0,
                      beyond=True)],
    )  # fmt: skip


def test_points_are_summarised_from_their_seeds() -> None:
    point = curve().arms["naive"][0]
    assert point.r1 is not None and abs(point.r1.mean - 0.54) < 1e-12 and point.r1.n == 2


def test_eta_sentence_states_measured_and_lower_bound_values() -> None:
    text = eta_sentence(curve())
    assert "at budget 100, the naive arm needs 200 images" in text and "eta 2.00" in text
    assert "never reached" in text and "eta > 1.00" in text
    assert "not measured" in eta_sentence(BudgetCurve())
    below = BudgetCurve(eta=[EtaPoint(budget=50, targeted_r1=0.4, naive_budget=0.0, ratio=0.0)])
    assert "no better than the baseline's, which needs no synthetic image: eta 0.00" in (
        eta_sentence(below)
    )


def test_the_report_draws_the_curve_and_the_eta_table(tmp_path: Path) -> None:
    data = ReportData(arms=[ArmResult(name="baseline", seeds=seeds(0.5, 0.52)),
                            ArmResult(name="oracle", seeds=seeds(0.6, 0.62),
                                      synthetic_images=SyntheticImages(restored=37)),
                            ArmResult(name="naive", seeds=seeds(0.56, 0.58),
                                      synthetic_images=SyntheticImages(
                                          budget=200, planned=200, generated=200, kept=200,
                                          trained=150))],
                      budget_curve=curve())  # fmt: skip
    html = render_report(data, tmp_path / "r.html").read_text()
    assert "Budget curve and efficiency gain" in html and "<polyline" in html
    assert html.count("<circle") == 6  # two arms x (baseline at 0 + two budgets)
    assert "naive: budget 100, R@1 54.00 ± 1.41" in html  # the exact numbers as a tooltip
    assert "&gt; 1.00" in html  # the lower bound as such
    assert "37 real images restored" in html and "trained on 150" in html
    assert ReportData.model_validate_json(data.model_dump_json()).budget_curve == data.budget_curve


def test_without_a_curve_the_section_says_how_to_get_one(tmp_path: Path) -> None:
    html = render_report(ReportData(), tmp_path / "r.html").read_text()
    assert "No budget curve in this run (set loop.budgets)." in html

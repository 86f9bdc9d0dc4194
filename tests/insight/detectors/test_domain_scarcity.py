"""Domain scarcity and per-class chi-square against hand-computed small tables."""

from __future__ import annotations

import json

import pytest

from atlantis.insight.detectors import DetectorInputs
from atlantis.insight.detectors.domain_scarcity import DomainScarcity, domain_chi_square

# cat: expected 5 per domain -> twitter 2/5 = 0.4 (flagged); dog: even; owl: expected 1.5 and
# no twitter key at all -> a missing cell, score 0.
TABLE = {
    "cat": {"google": 8, "twitter": 2},
    "dog": {"google": 5, "twitter": 5},
    "owl": {"google": 3},
}


def run(table: dict[str, dict[str, int]], **kw: float):
    return DomainScarcity(**kw).run(DetectorInputs(class_domain_counts=table))


def test_cell_scores_against_an_even_spread() -> None:
    result = run(TABLE)
    scores = {i.key: i.score for i in result.items}
    assert scores == pytest.approx(
        {
            "cat|google": 1.0,  # 8 / 5 clipped
            "cat|twitter": 0.4,
            "dog|google": 1.0,
            "dog|twitter": 1.0,
            "owl|google": 1.0,  # 3 / 1.5 clipped
            "owl|twitter": 0.0,
        }
    )
    assert [i.key for i in result.flagged()] == ["owl|twitter", "cat|twitter"]
    cell = next(i for i in result.items if i.key == "cat|twitter")
    assert cell.detail["expected"] == 5.0 and cell.detail["class_total"] == 10


def test_summary_totals_and_missing_domains() -> None:
    s = run(TABLE).summary
    assert s["domains"] == ["google", "twitter"]
    assert (s["n_cells"], s["n_flagged_cells"], s["n_empty_cells"]) == (6, 2, 1)
    assert s["domain_totals"] == {"google": 16, "twitter": 7}
    assert s["missing_domains"] == {"twitter": {"n_classes": 1, "classes": ["owl"]}}
    assert s["most_severe_cells"][0] == {
        "class": "owl",
        "domain": "twitter",
        "count": 0,
        "expected": 1.5,
        "score": 0.0,
    }
    json.dumps(run(TABLE).to_dict())


def test_chi_square_per_class() -> None:
    # cat: (8-5)^2/5 + (2-5)^2/5 = 3.6, 1 dof; V = sqrt(3.6 / (10 * 1)) = 0.6.
    cat = domain_chi_square([8, 2])
    assert cat["chi2"] == pytest.approx(3.6)
    assert cat["dof"] == 1
    assert cat["p_value"] == pytest.approx(0.05778, abs=1e-4)
    assert cat["imbalance"] == pytest.approx(0.6)
    assert domain_chi_square([5, 5])["imbalance"] == 0.0
    assert domain_chi_square([0, 9, 0])["imbalance"] == pytest.approx(1.0)  # all in one domain
    assert domain_chi_square([7])["p_value"] == 1.0  # one domain: nothing to compare
    worst = run(TABLE).summary["most_imbalanced_classes"]
    assert [w["class"] for w in worst] == ["owl", "cat"]  # owl V = 1, cat 0.6, dog 0 left out
    assert worst[1]["imbalance"] == pytest.approx(0.6)


def test_class_without_images_is_maximally_scarce() -> None:
    result = run({"emu": {"google": 0, "twitter": 0}, "cat": {"google": 1, "twitter": 1}})
    emu = [i for i in result.items if i.detail["class"] == "emu"]
    assert [(i.score, i.flagged) for i in emu] == [(0.0, True), (0.0, True)]


def test_threshold_option() -> None:
    assert {i.key for i in run(TABLE, threshold=0.3).flagged()} == {"owl|twitter"}


def test_table_without_domains_fails_loudly() -> None:
    with pytest.raises(ValueError, match="no domain"):
        run({"cat": {}})

"""InsightExtract: the findings view is capped, rules text cites the numbers, keys are checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from atlantis.insight.classes import class_report
from atlantis.insight.extract import (
    MAX_CELLS,
    assemble_insight,
    extract_rules,
    findings_view,
    write_recommendations,
)
from atlantis.insight.schema import (
    DataContext,
    Domain,
    DomainSet,
    FrequencyTable,
    NewClasses,
    Recommendations,
    ScarceCell,
    TokenCount,
)
from atlantis.llm import create_llm
from atlantis.llm.base import LLM

CONTEXT = DataContext(summary="Gull and tern photos.")
DOMAINS = DomainSet(criterion="activity", domains=[Domain(name="flying"), Domain(name="sitting")])
COUNTS = {"Laysan Albatross": {"flying": 10, "sitting": 0}, "tern": {"flying": 3, "sitting": 3},
          "gull": {"flying": 1, "sitting": 1}}  # fmt: skip
CELLS = [ScarceCell(class_name="Laysan Albatross", domain="sitting", count=0, expected=5.0)]
LABELS = ["Laysan Albatross"] * 10 + ["tern"] * 6 + ["gull"] * 2
DETECTORS = [{"name": "class_imbalance", "status": "ok", "n_items": 3, "n_flagged": 1,
              "summary": {"ratio": 5}, "top_items": [{"key": "gull"}]},
             {"name": "outliers", "status": "skipped", "n_items": 0, "n_flagged": 0,
              "summary": {"huge": "x" * 5000}}]  # fmt: skip


def view(**over: Any) -> dict[str, Any]:
    args = dict(context=CONTEXT, report=class_report(LABELS), domains=DOMAINS, counts=COUNTS,
                cells=CELLS, new=NewClasses(new_classes=["wandering albatross"]),
                detectors=DETECTORS, assigned={"label": 0, "keyword": 18, "embedding": 0, "none": 0})  # fmt: skip
    return findings_view(**{**args, **over})


def test_view_is_a_capped_summary() -> None:
    v = view(cells=CELLS * 100)
    assert len(v["scarce_cells"]) == MAX_CELLS and v["n_scarce_cells"] == 100
    assert v["classes"]["under_represented"] == [["gull", 2]]
    assert v["classes_needing_domains"] == ["Laysan Albatross"]
    assert v["class_domain_counts"] == {"Laysan Albatross": {"flying": 10, "sitting": 0}}
    assert v["detectors"][0] == {"name": "class_imbalance", "status": "ok", "n_items": 3,
                                 "n_flagged": 1, "summary": {"ratio": 5}}  # no item ids  # fmt: skip
    assert "summary" not in v["detectors"][1]  # too long for a prompt
    json.dumps(v)  # plain JSON


def test_rules_text_names_classes_numbers_and_new_classes() -> None:
    recs = extract_rules(view())
    assert recs.data_overview.startswith("Gull and tern photos.")
    assert (
        "flying, sitting" in recs.data_overview
        and "class_imbalance (1 flagged)" in recs.data_overview
    )
    assert (
        "gull (2 images, about 6 short of the typical class size 8)"
        in recs.class_imbalance_recommendations
    )
    assert "wandering albatross" in recs.class_imbalance_recommendations
    assert list(recs.domain_imbalance_recommendations) == ["Laysan Albatross"]
    text = recs.domain_imbalance_recommendations["Laysan Albatross"]
    assert "'sitting' (0 images, 5 expected)" in text and "'flying' (10)" in text


def test_balanced_data_says_so() -> None:
    recs = extract_rules(view(report=class_report(["a", "b"]), cells=[]))
    assert "No class is under the threshold" in recs.class_imbalance_recommendations
    assert recs.domain_imbalance_recommendations == {}


class Scripted(LLM):
    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(max_repairs=0)
        self.answer = answer

    @property
    def identity(self) -> str:
        return "scripted"

    def generate(self, messages, schema, options) -> str:
        return json.dumps(self.answer)


def test_model_keys_are_mapped_to_class_names_and_strays_dropped() -> None:
    llm = Scripted({"data_overview": "o", "class_imbalance_recommendations": "c",
                    "domain_imbalance_recommendations": {"laysan albatrosses": "sit them",
                                                         "Penguin": "invented", "gull": "g"}})  # fmt: skip
    recs, dropped = write_recommendations(llm, view(), ["Laysan Albatross", "tern", "gull"])
    assert recs.domain_imbalance_recommendations == {"Laysan Albatross": "sit them", "gull": "g"}
    assert dropped == ["Penguin"]


def test_assemble_validates_and_copies_numbers() -> None:
    table = FrequencyTable(n_captions=18, tagger="wordnet-lexicon",
                           top=[TokenCount(token="fly", pos="verb", count=13)])  # fmt: skip
    recs, _ = write_recommendations(create_llm("rules"), view(), list(COUNTS))
    report = class_report(LABELS)
    ins = assemble_insight(recs, report, DOMAINS, COUNTS, CELLS, NewClasses(new_classes=["x"]),
                           table, DETECTORS, {"llm": "rules"})  # fmt: skip
    assert ins.class_counts == {"Laysan Albatross": 10, "tern": 6, "gull": 2}
    assert ins.under_represented_classes == ["gull"] and ins.new_classes == ["x"]
    assert ins.scarce_cells == CELLS and ins.findings == DETECTORS
    with pytest.raises(ValidationError):
        assemble_insight(Recommendations(data_overview="o", class_imbalance_recommendations="c",
                                         domain_imbalance_recommendations={}),
                         report, DOMAINS, {"a": {"flying": "many"}}, CELLS, NewClasses(new_classes=[]),
                         table, [], {})  # fmt: skip

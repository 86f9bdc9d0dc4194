"""ClassInfer: counting with labels, and proposing classes from captions without them."""

from __future__ import annotations

from atlantis.data.records import ImageRecord
from atlantis.insight.classes import class_report, class_rules, has_labels, infer_classes
from atlantis.insight.context import context_rules, dataset_summary, frequency_summary
from atlantis.insight.frequency import frequency_eval, tag_records
from atlantis.llm import create_llm


def test_counts_ratio_and_default_threshold() -> None:
    labels = ["a"] * 10 + ["b"] * 6 + ["c"] * 2 + ["d"] * 3 + [""]
    r = class_report(labels)
    assert r.class_names == ["a", "b", "c", "d"]  # first seen; the empty label is no class
    assert r.class_counts == {"a": 10, "b": 6, "c": 2, "d": 3}
    assert r.imbalance_ratio == 5.0
    # typical size: the mean of the classes at or above the median 4.5, (10 + 6) / 2 = 8
    assert r.threshold == 4  # ceil(8 / 2)
    assert r.under_represented == ["c", "d"]  # smallest first


def test_explicit_threshold_and_order() -> None:
    r = class_report(["a", "b", "b", "c"], threshold=2, order=["c", "b", "a", "zzz"])
    assert r.class_names == ["c", "b", "a"]
    assert r.under_represented == ["a", "c"]  # ties by name
    assert class_report([]).class_names == [] and class_report([]).imbalance_ratio == 1.0


def test_has_labels() -> None:
    assert not has_labels(["", " ", ""]) and has_labels(["", "x"])


def _unlabelled() -> list[ImageRecord]:
    caps = (["a dog running"] * 4 + ["a dog running on grass"] + ["a cat sleeping"] * 2
            + ["a cat sleeping on a sofa"] + ["a horse in a field"] * 2 + ["an empty field"])  # fmt: skip
    return [ImageRecord(id=str(i), path=f"{i}.png", label="", split="train", captions=[c])
            for i, c in enumerate(caps)]  # fmt: skip


def test_without_labels_classes_come_from_concrete_caption_nouns() -> None:
    recs = _unlabelled()
    tagged = tag_records(recs, "wordnet")
    table = frequency_eval(tagged)
    summary = dataset_summary(recs)
    context = context_rules({"dataset": summary, "frequency": frequency_summary(table)})
    proposed, labels = infer_classes(create_llm("rules"), context, table, tagged, n_classes=3)
    # "field" (3) is a place, not a thing; "grass" and "sofa" (1) are less frequent
    assert [c.name for c in proposed.classes] == ["dog", "cat", "horse"]
    assert labels == ["dog"] * 5 + ["cat"] * 3 + ["horse"] * 2 + [""]
    report = class_report(labels)
    assert report.class_counts == {"dog": 5, "cat": 3, "horse": 2}


def test_class_rules_never_return_nothing() -> None:
    out = class_rules({"n_classes": 5, "frequency": {"top_nouns": [], "top_verbs": []}})
    assert len(out.classes) == 1 and out.classes[0].name == "all images"

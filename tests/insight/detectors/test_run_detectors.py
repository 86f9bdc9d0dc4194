"""run_detectors: skips detectors without inputs, isolates failures, stays JSON-ready."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atlantis.insight.detectors import (
    DEFAULT_ORDER,
    DETECTORS,
    DetectorInputs,
    DetectorResult,
    ItemIssue,
    jsonable,
    run_detectors,
)
from atlantis.insight.detectors.class_imbalance import ClassImbalance
from atlantis.registry import UnknownNameError
from tests.insight.detectors._helpers import make_records


@pytest.fixture
def full() -> DetectorInputs:
    records = make_records(["a"] * 4 + ["b"] * 4)
    rng = np.random.default_rng(0)
    return DetectorInputs(
        records=records,
        class_domain_counts={"a": {"g": 3, "t": 1}, "b": {"g": 2, "t": 2}},
        embeddings=rng.normal(size=(8, 4)).astype(np.float32),
        embedding_ids=[r.id for r in records],
    )


def test_every_detector_is_registered_in_the_default_order() -> None:
    assert list(DEFAULT_ORDER) == [n for n in DEFAULT_ORDER if n in DETECTORS]
    assert set(DEFAULT_ORDER) <= set(DETECTORS.names())


def test_all_run_when_inputs_exist(full: DetectorInputs) -> None:
    results = run_detectors(full)
    assert [r.name for r in results] == list(DEFAULT_ORDER)
    assert [r.status for r in results] == ["ok"] * 4
    assert all(r.info["seconds"] >= 0 for r in results)
    json.dumps([r.to_dict() for r in results])


def test_missing_inputs_skip_with_the_reason() -> None:
    results = {r.name: r for r in run_detectors(DetectorInputs(records=make_records(["a", "b"])))}
    assert results["class_imbalance"].status == "ok"
    assert results["domain_scarcity"].status == "skipped"
    assert results["domain_scarcity"].summary["reason"] == "no class x domain counts"
    assert results["near_duplicates"].summary["reason"] == "no embeddings"
    assert results["outliers"].status == "skipped" and results["outliers"].error is None
    empty = run_detectors(DetectorInputs())
    assert [r.status for r in empty] == ["skipped"] * 4
    assert "no training records" in empty[-1].summary["reason"]  # outliers needs both


def test_a_failing_detector_does_not_sink_the_others(
    full: DetectorInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: ClassImbalance, inputs: DetectorInputs) -> DetectorResult:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ClassImbalance, "run", boom)
    results = {r.name: r for r in run_detectors(full)}
    failed = results["class_imbalance"]
    assert failed.status == "failed" and failed.error == "RuntimeError: disk on fire"
    assert failed.items == [] and "disk on fire" in failed.info["traceback"]
    assert [results[n].status for n in DEFAULT_ORDER[1:]] == ["ok"] * 3
    assert json.loads(json.dumps(failed.to_dict()))["error"] == "RuntimeError: disk on fire"


def test_bad_options_and_bad_data_fail_only_their_detector(full: DetectorInputs) -> None:
    full.class_domain_counts = {"a": {}}  # no domain at all
    results = run_detectors(full, options={"class_imbalance": {"threshold": 5}})
    status = {r.name: (r.status, r.error) for r in results}
    assert status["class_imbalance"][0] == "failed" and "threshold" in status["class_imbalance"][1]
    assert status["domain_scarcity"][0] == "failed" and "no domain" in status["domain_scarcity"][1]
    assert status["near_duplicates"] == ("ok", None)


def test_names_select_and_order(full: DetectorInputs) -> None:
    results = run_detectors(full, names=["outliers", "class_imbalance"])
    assert [r.name for r in results] == ["outliers", "class_imbalance"]
    opts = {"near_duplicates": {"threshold": 0.5}}
    assert run_detectors(full, names=["near_duplicates"], options=opts)[0].status == "ok"


def test_typos_raise_instead_of_finding_nothing(full: DetectorInputs) -> None:
    with pytest.raises(UnknownNameError, match="valid names"):
        run_detectors(full, names=["near_duplicate"])
    with pytest.raises(ValueError, match="will not run"):
        run_detectors(full, names=["outliers"], options={"class_imbalance": {}})


def test_inputs_reject_misaligned_ids() -> None:
    with pytest.raises(ValueError, match="embedding_ids"):
        DetectorInputs(embeddings=np.zeros((3, 2), np.float32), embedding_ids=["a", "b"])
    with pytest.raises(ValueError, match="embedding_ids"):
        DetectorInputs(embeddings=np.zeros((3, 2), np.float32))


def test_result_views() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ItemIssue("x", 1.5, True)
    items = [
        ItemIssue(k, s, f) for k, s, f in [("b", 0.2, True), ("a", 0.2, True), ("c", 0.9, False)]
    ]
    result = DetectorResult("demo", "ok", items=items, summary={"x": np.float32(0.5)})
    assert [i.key for i in result.flagged()] == ["a", "b"]  # ties broken by key
    view = result.to_dict(max_items=1)
    assert (view["n_items"], view["n_flagged"], len(view["top_items"])) == (3, 2, 1)
    assert type(view["summary"]["x"]) is float
    assert jsonable({"p": 1.23456789e-9, "n": np.int64(3), "s": {2, 1}, "nan": float("nan")}) == {
        "p": 1.2346e-9,
        "n": 3,
        "s": [1, 2],
        "nan": None,
    }

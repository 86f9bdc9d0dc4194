"""Near duplicates on hand-placed unit vectors with known cosine similarities."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atlantis.insight.detectors import DetectorInputs
from atlantis.insight.detectors.near_duplicates import NearDuplicates
from tests.insight.detectors._helpers import make_records

# a; b at angle 0.1 from a (cos 0.995); f = 2a (cos 1 with a: an exact duplicate up to scale);
# c and e at angle 0.3 (cos 0.955 < 0.97: similar, not duplicates); d orthogonal to all but e.
IDS = ["a", "b", "c", "d", "e", "f"]
X = np.array(
    [
        [1, 0, 0],
        [math.cos(0.1), math.sin(0.1), 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, math.cos(0.3), math.sin(0.3)],
        [2, 0, 0],
    ],
    dtype=np.float32,
)


def run(labels: list[str] | None = None, **kw: float):
    records = []
    if labels is not None:
        made = make_records(labels)
        records = [r.model_copy(update={"id": i}) for r, i in zip(made, IDS, strict=True)]
    inputs = DetectorInputs(records=records, embeddings=X, embedding_ids=IDS)
    return NearDuplicates(**kw).run(inputs)


def test_flags_and_scores() -> None:
    result = run()
    items = {i.key: i for i in result.items}
    assert {i.key for i in result.flagged()} == {"a", "b", "f"}
    assert items["a"].detail["nearest"] == "f" and items["a"].score == pytest.approx(0, abs=1e-5)
    # score = (1 - s) / (2 (1 - 0.97)): b's nearest is a or f at cos 0.1.
    assert items["b"].score == pytest.approx((1 - math.cos(0.1)) / 0.06, rel=1e-3)
    assert items["c"].detail["nearest"] == "e"
    assert items["c"].score == pytest.approx((1 - math.cos(0.3)) / 0.06, rel=1e-3)
    assert not items["c"].flagged
    assert items["d"].score == 1.0  # cos(d, e) = sin 0.3 ~ 0.3: clearly distinct


def test_pairs_and_sets() -> None:
    s = run().summary
    assert (s["n_pairs"], s["n_exact_pairs"], s["n_sets"], s["largest_set"]) == (3, 1, 1, 3)
    assert s["examples"][0]["ids"] == ["a", "b", "f"]
    assert s["n_cross_class_pairs"] is None  # no records: labels unknown
    json.dumps(run().to_dict())


def test_k1_still_links_the_whole_set() -> None:
    s = run(k=1).summary
    assert (s["n_sets"], s["largest_set"]) == (1, 3)
    assert s["n_pairs"] == 2  # a-f and b-a: the b-f pair is nobody's nearest neighbour


def test_cross_class_pairs_need_labels() -> None:
    # a, f: "x"; b: "y" -> pairs a-b and b-f cross classes, a-f does not.
    s = run(["x", "y", "z", "z", "z", "x"]).summary
    assert s["n_cross_class_pairs"] == 2
    assert s["examples"][0]["labels"] == ["x", "y"]


def test_lower_threshold_flags_the_similar_pair() -> None:
    assert {i.key for i in run(threshold=0.95).flagged()} == {"a", "b", "c", "e", "f"}


def test_single_image_has_nothing_to_compare() -> None:
    inputs = DetectorInputs(embeddings=X[:1], embedding_ids=["a"])
    result = NearDuplicates().run(inputs)
    assert result.status == "ok" and result.items == [] and result.summary["n_pairs"] == 0

"""Recall@K, MAP@R and per-class R@1: hand-computed cases, references, PML, input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from atlantis.evaluation.recall import (
    DEFAULT_KS,
    SOP_KS,
    default_ks,
    evaluate_retrieval,
    recall_at_k,
)

# Six points on a line (euclidean). Neighbour orders, worked out by hand (ties -> lower index):
#   q0 (0, A): 1A 2B 3A 4B 5C   first hit rank 0; R=2, top-2 A B    -> AP = (1/1)/2 = 0.5
#   q1 (1, A): 0A 2B 3A 4B 5C   first hit rank 0; R=2, top-2 A B    -> AP = 0.5
#   q2 (3, B): 3A {1A 4B tie at 2} 0A 5C -> 3A 1A 4B; first hit rank 2; R=1, top-1 A -> 0
#   q3 (4.5, A): 4B 2B 1A 0A 5C first hit rank 2; R=2, top-2 B B    -> AP = 0
#   q4 (5, B): 3A 2B 1A {0A 5C tie} first hit rank 1; R=1, top-1 A  -> AP = 0
#   q5 (10, C): singleton, never a hit; R=0 so skipped by MAP@R.
LINE_X = [0.0, 1.0, 3.0, 4.5, 5.0, 10.0]
LINE_LABELS = ["A", "A", "B", "A", "B", "C"]


def line_embeddings() -> np.ndarray:
    return np.array([[x, 0.0] for x in LINE_X], dtype=np.float32)


def test_hand_computed_example() -> None:
    with pytest.warns(UserWarning, match=r"K=\[8\] exceed the 5 other items"):
        m = evaluate_retrieval(line_embeddings(), LINE_LABELS, ks=DEFAULT_KS, distance="euclidean")
    assert m.recall == {1: 2 / 6, 2: 3 / 6, 4: 5 / 6, 8: 5 / 6}
    assert m.map_at_r == pytest.approx((0.5 + 0.5 + 0 + 0 + 0) / 5)
    assert m.per_class_r1 == {"A": 2 / 3, "B": 0.0, "C": 0.0}
    assert (m.num_queries, m.num_classes, m.num_map_at_r_queries) == (6, 3, 5)
    assert recall_at_k(line_embeddings(), LINE_LABELS, ks=(1, 2), distance="euclidean") == {
        1: 2 / 6,
        2: 3 / 6,
    }


def test_label_types_are_preserved_and_to_dict_is_json() -> None:
    int_labels = np.array([{"A": 3, "B": 7, "C": 9}[s] for s in LINE_LABELS])
    m = evaluate_retrieval(line_embeddings(), int_labels, ks=(1, 2), distance="euclidean")
    assert m.per_class_r1 == {3: 2 / 3, 7: 0.0, 9: 0.0}
    assert all(type(k) is int for k in m.per_class_r1)
    d = json.loads(json.dumps(m.to_dict()))
    assert d["R@1"] == 2 / 6 and d["R@2"] == 3 / 6 and d["MAP@R"] == pytest.approx(0.2)
    assert d["per_class_R@1"] == {"3": 2 / 3, "7": 0.0, "9": 0.0}
    assert d["distance"] == "euclidean" and d["num_queries"] == 6


def test_object_and_tensor_labels() -> None:
    as_object = np.array(LINE_LABELS, dtype=object)  # what a pandas str column gives
    m = evaluate_retrieval(line_embeddings(), as_object, ks=(1,), distance="euclidean")
    assert m.per_class_r1 == {"A": 2 / 3, "B": 0.0, "C": 0.0}
    codes = torch.tensor([0, 0, 1, 0, 1, 2])
    m = evaluate_retrieval(
        torch.from_numpy(line_embeddings()), codes, ks=(1,), distance="euclidean"
    )
    assert m.per_class_r1 == {0: 2 / 3, 1: 0.0, 2: 0.0} and m.recall == {1: 2 / 6}


def test_exact_duplicates_never_count_as_own_neighbour() -> None:
    # Two pairs of identical points; each query's duplicate has the *other* label, so a
    # query that found itself would score R@1 = 1 instead of 0. Rank 2 is a tie between the
    # other pair's items (lower index first): a hit for queries 0 and 2 only.
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    labels = [0, 1, 0, 1]
    for name in ("cosine", "euclidean", "poincare"):
        m = evaluate_retrieval(x * 0.5, labels, ks=(1, 2, 3), distance=name)
        assert m.recall == {1: 0.0, 2: 0.5, 3: 1.0}, name
        assert m.map_at_r == 0.0


def test_all_identical_embeddings_use_index_order() -> None:
    # All distances tie: neighbours are the other indices in increasing order.
    m = evaluate_retrieval(np.ones((4, 3), dtype=np.float32), [0, 1, 0, 1], ks=(1, 2))
    # q0 -> 1,2,3 (hit at rank 1); q1 -> 0,2,3 (rank 2); q2 -> 0,.. (rank 0); q3 -> 0,1 (rank 1)
    assert m.recall == {1: 0.25, 2: 0.75}
    assert m.map_at_r == pytest.approx((0 + 0 + 1 + 0) / 4)


def reference_metrics(
    x: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], name: str
) -> tuple[dict[int, float], float]:
    """Brute force in float64 numpy: full distance matrix, stable argsort, direct formulas."""
    x = x.astype(np.float64)
    sq = ((x[:, None] - x[None]) ** 2).sum(-1)
    if name == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - xn @ xn.T
    elif name == "euclidean":
        d = np.sqrt(sq)
    else:
        w = 1 - 0.1 * (x**2).sum(1)
        d = np.arccosh(1 + 0.2 * sq / np.outer(w, w)) / np.sqrt(0.1)
    np.fill_diagonal(d, np.inf)
    rel = labels[np.argsort(d, axis=1, kind="stable")[:, :-1]] == labels[:, None]
    recall = {k: float(rel[:, :k].any(1).mean()) for k in ks}
    aps = []
    for row, label in zip(rel, labels, strict=True):
        r = int((labels == label).sum()) - 1
        if r > 0:
            hits = row[:r]
            aps.append(sum(hits[i] * hits[: i + 1].sum() / (i + 1) for i in range(r)) / r)
    return recall, float(np.mean(aps))


def clustered(n: int, classes: int, dim: int, seed: int, scale: float = 1.0) -> tuple:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(classes), rng.integers(0, classes, n - classes)])
    x = rng.normal(size=(classes, dim))[labels] + rng.normal(size=(n, dim)) * 1.2
    return (x * scale).astype(np.float32), labels


@pytest.mark.parametrize("name", ["cosine", "euclidean", "poincare"])
def test_matches_numpy_reference(name: str) -> None:
    x, labels = clustered(240, 30, 8, seed=1, scale=0.1 if name == "poincare" else 1.0)
    ks = (1, 2, 4, 8, 16)
    m = evaluate_retrieval(x, labels, ks=ks, distance=name)
    ref_recall, ref_map = reference_metrics(x, labels, ks, name)
    assert m.recall == ref_recall
    assert m.map_at_r == pytest.approx(ref_map, abs=1e-12)
    assert recall_at_k(x, labels, ks, name) == ref_recall


def test_identical_across_memory_budgets_and_chunk_sizes() -> None:
    x, labels = clustered(150, 20, 16, seed=2)
    ref = evaluate_retrieval(x, labels, ks=(1, 5, 50)).to_dict()
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 13}, {"memory_budget_bytes": 10_000}):
        assert evaluate_retrieval(x, labels, ks=(1, 5, 50), **kwargs).to_dict() == ref


def test_matches_pytorch_metric_learning() -> None:
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    x, labels = clustered(400, 50, 16, seed=3)  # every class has >= 2 items (PML drops lone ones)
    labels[np.bincount(labels)[labels] == 1] = 0
    emb = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count"
    )
    lab_t = torch.from_numpy(labels)
    pml = calc.get_accuracy(emb, lab_t, emb, lab_t, ref_includes_query=True)
    for name in ("cosine", "euclidean"):
        m = evaluate_retrieval(emb, labels, ks=(1,), distance=name)
        assert m.recall[1] == pytest.approx(pml["precision_at_1"], abs=1e-12)
        assert m.map_at_r == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-12)


def test_default_ks() -> None:
    assert default_ks(60_502, 11_316) == SOP_KS
    assert default_ks(5_924, 100) == DEFAULT_KS  # CUB-200 test split
    assert default_ks(500, 250) == DEFAULT_KS  # too small for K=1000
    x, labels = clustered(1200, 400, 4, seed=4)
    assert set(evaluate_retrieval(x, labels).recall) == set(SOP_KS)


def test_map_at_r_undefined_when_all_singletons() -> None:
    m = evaluate_retrieval(np.eye(3, dtype=np.float32), ["a", "b", "c"], ks=(1,))
    assert m.recall == {1: 0.0} and np.isnan(m.map_at_r) and m.num_map_at_r_queries == 0
    assert m.to_dict()["MAP@R"] is None


@pytest.mark.parametrize(
    ("embeddings", "labels", "ks", "match"),
    [
        (np.zeros((4, 2, 1), np.float32), [0, 0, 1, 1], (1,), r"2-D array \[num_items, dim\]"),
        (np.zeros((4, 2), np.int32), [0, 0, 1, 1], (1,), "floating-point"),
        (np.zeros((4, 2), np.float32), [0, 0, 1], (1,), r"one label per embedding row \(4\)"),
        (np.zeros((1, 2), np.float32), [0], (1,), "at least 2 items"),
        (np.zeros((4, 2), np.float32), [[0], [0], [1], [1]], (1,), "1-D"),
        (np.zeros((4, 2), np.float32), [0, None, 1, 1], (1,), "ints or strings"),
        (np.zeros((4, 2), np.float32), [0.0, np.nan, 1.0, 1.0], (1,), "finite"),
        (np.zeros((4, 2), np.float32), [0, 0, 1, 1], (0,), "positive ints"),
        (np.zeros((4, 2), np.float32), [0, 0, 1, 1], (1.5,), "positive ints"),
        (np.zeros((4, 2), np.float32), [0, 0, 1, 1], (), "positive ints"),
        (np.zeros((4, 2), np.float32), [0, 0, 1, 1], (True,), "positive ints"),
    ],
)
def test_bad_inputs(embeddings: np.ndarray, labels: list, ks: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate_retrieval(embeddings, labels, ks=ks)
    with pytest.raises(ValueError, match=match):
        recall_at_k(embeddings, labels, ks=ks)


def test_non_finite_rows_are_reported_before_compute() -> None:
    x = np.zeros((8, 3), np.float32)
    x[[2, 5, 6], 1] = [np.nan, np.inf, -np.inf]
    with pytest.raises(
        ValueError, match=r"3 of 8 rows contain NaN or inf; first bad rows: \[2, 5, 6\]"
    ):
        recall_at_k(x, np.arange(8) % 2)
    with pytest.raises(ValueError, match="valid names"):
        recall_at_k(np.zeros((4, 2), np.float32), [0, 0, 1, 1], distance="l1")

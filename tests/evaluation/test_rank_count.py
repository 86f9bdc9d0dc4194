"""The rank counter (method="count") against the top-K scan (method="topk") on the same grid.

Both methods read the same canonical key blocks, so Recall@K and per-class R@1 must be
*equal*, not close, whatever the data: exact ties, duplicates across classes, singletons,
classes that span several tiles. Small tiles make small sets exercise every code path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlantis.evaluation import blocks
from atlantis.evaluation.recall import evaluate_retrieval, recall_at_k


def clustered(n: int, classes: int, dim: int, seed: int, noise: float = 0.4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim))
    x = centres[labels] + noise * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * 0.9).astype(np.float32), labels


def tied(n: int, seed: int):
    """Few distinct integer-valued rows: most keys tie exactly with many others."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, size=(n, 3)).astype(np.float32) * 0.25
    return x, rng.integers(0, 6, n)


def mixed(seed: int):
    """Duplicates across classes, singletons and one class spanning several small tiles."""
    x, y = clustered(150, 25, 8, seed)
    x[10] = x[20]  # an exact duplicate pair ...
    y[10], y[20] = 0, 1  # ... in different classes
    y[30:70] = 99  # a big class (40 items: 5 tiles of 8)
    y[[5, 6, 7]] = [1000, 1001, 1002]  # singletons: never a hit, no MAP@R
    return x, y


DATASETS = {
    "clustered": lambda: clustered(200, 30, 6, 0),
    "tied": lambda: tied(160, 1),
    "mixed": lambda: mixed(2),
}


@pytest.fixture(params=[8, 64, 512], ids=lambda t: f"tile{t}")
def tile(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(blocks, "TILE", request.param)
    return request.param


@pytest.mark.parametrize("data", sorted(DATASETS))
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "poincare"])
def test_count_equals_topk(tile: int, data: str, distance: str) -> None:
    x, y = DATASETS[data]()
    ks = (1, 2, 4, 8, 50)
    count = evaluate_retrieval(x, y, ks=ks, distance=distance, method="count")
    topk = evaluate_retrieval(x, y, ks=ks, distance=distance, method="topk")
    assert count.recall == topk.recall
    assert count.per_class_r1 == topk.per_class_r1
    assert count.num_map_at_r_queries == topk.num_map_at_r_queries
    assert count.map_at_r == pytest.approx(topk.map_at_r, abs=1e-12)
    assert recall_at_k(x, y, ks=ks, distance=distance, method="count") == topk.recall


def brute_force_recall(x: np.ndarray, y: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    """float64 cosine distances, self excluded, stable sort (lower index first on ties)."""
    xn = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - xn @ xn.T
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")
    rel = y[order] == y[:, None]
    first = np.where(rel[:, :-1].any(1), rel[:, :-1].argmax(1), len(y))
    return {k: float(np.mean(first < k)) for k in ks}


def test_count_matches_independent_brute_force(tile: int) -> None:
    x, y = clustered(300, 40, 16, 3)
    ks = (1, 2, 4, 8, 100)
    assert recall_at_k(x, y, ks=ks, method="count") == brute_force_recall(x, y, ks)


@pytest.mark.parametrize("method", ["count", "topk"])
def test_ties_resolve_to_the_lower_original_index(tile: int, method: str) -> None:
    # Query 0 sees items 1..4 at exactly the same key (cosine 0); its only positive is item
    # 3, preceded by the tied items 1 and 2: rank 2, a hit from K=3 on. Query 3's positive
    # (item 0, cosine 0) comes after items 1, 2, 4 (cosine 1) and 5 (cosine 0.0995): rank 4.
    # Items 1, 2, 4 and 5 have no other item of their label.
    x = np.array([[1.0, 0.0]] + [[0.0, 1.0]] * 4 + [[-1.0, 0.1]], dtype=np.float32)
    y = np.array([7, 1, 2, 7, 3, 4])
    m = evaluate_retrieval(x, y, ks=(1, 2, 3, 4, 5), method=method)  # type: ignore[arg-type]
    assert m.recall == {1: 0.0, 2: 0.0, 3: 1 / 6, 4: 1 / 6, 5: 2 / 6}
    assert m.per_class_r1[7] == 0.0
    assert m.map_at_r == 0.0  # R = 1 for both queries of label 7, neither at rank 0


def test_results_do_not_depend_on_threads(tile: int) -> None:
    x, y = mixed(4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = evaluate_retrieval(x, y, method="count")
        torch.set_num_threads(2)
        two = evaluate_retrieval(x, y, method="count")
    finally:
        torch.set_num_threads(before)
    assert one == two


def test_auto_falls_back_to_topk_when_thresholds_exceed_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from atlantis.evaluation import recall

    used: list[str] = []
    for name in ("_scan_count", "_scan_topk"):
        real = getattr(recall, name)
        monkeypatch.setattr(recall, name, lambda *a, _r=real, _n=name: used.append(_n) or _r(*a))
    x, y = clustered(120, 2, 4, 5)  # two classes of ~60: ~7,000 positive pairs
    small = evaluate_retrieval(x, y, memory_budget_bytes=1000)
    large = evaluate_retrieval(x, y)
    assert used == ["_scan_topk", "_scan_count"]
    assert small.recall == large.recall and small.per_class_r1 == large.per_class_r1
    assert small.map_at_r == pytest.approx(large.map_at_r, abs=1e-12)


def test_unknown_method_and_options() -> None:
    x, y = clustered(20, 3, 4, 6)
    with pytest.raises(ValueError, match="method: expected one of auto, count, topk"):
        evaluate_retrieval(x, y, method="heap")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        evaluate_retrieval(x, y, chunksize=3)


EDGE_CASES = {
    "float64": lambda rng: (rng.normal(size=(120, 8)), rng.integers(0, 10, 120)),
    "all singletons": lambda rng: (rng.normal(size=(30, 4)), np.arange(30)),
    "two items": lambda rng: (rng.normal(size=(2, 4)), np.array([0, 0])),
    "one class": lambda rng: (rng.normal(size=(90, 4)), np.zeros(90, int)),
    "all zero vectors": lambda rng: (np.zeros((20, 3)), rng.integers(0, 4, 20)),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "poincare"])
def test_edge_cases_agree(tile: int, case: str, distance: str) -> None:
    x, y = EDGE_CASES[case](np.random.default_rng(7))
    x = x * 0.1 if case == "float64" else (x * 0.1).astype(np.float32)
    ks = (1, 2, 4)
    count = evaluate_retrieval(x, y, ks=ks, distance=distance, method="count")
    topk = evaluate_retrieval(x, y, ks=ks, distance=distance, method="topk")
    assert count.recall == topk.recall and count.per_class_r1 == topk.per_class_r1
    assert count.num_map_at_r_queries == topk.num_map_at_r_queries
    if topk.num_map_at_r_queries:
        assert count.map_at_r == pytest.approx(topk.map_at_r, abs=1e-12)

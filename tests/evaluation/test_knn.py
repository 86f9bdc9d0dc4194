"""Exact chunked k-NN: brute-force agreement, leave-one-out by index, ties, chunk invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlantis.evaluation.knn import MiB, knn, query_chunk_size
from atlantis.evaluation.topk import topk_rows


def brute_force(x: np.ndarray, k: int, name: str, c: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 distance matrix, diagonal excluded, stable argsort (lower index wins ties)."""
    x = x.astype(np.float64)
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if name == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1.0 - xn @ xn.T
    elif name == "euclidean":
        d = np.sqrt(sq)
    else:
        w = 1 - c * (x**2).sum(1)
        d = np.arccosh(1 + 2 * c * sq / (w[:, None] * w[None, :])) / np.sqrt(c)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return (np.random.default_rng(0).normal(size=(300, 12)) * 0.25).astype(np.float32)


@pytest.mark.parametrize("name", ["cosine", "euclidean", "poincare"])
def test_matches_brute_force(data: np.ndarray, name: str) -> None:
    idx, dist = knn(data, None, 15, name)
    ref_idx, ref_dist = brute_force(data, 15, name)
    assert idx.dtype == torch.int64 and dist.dtype == torch.float32
    assert idx.shape == dist.shape == (300, 15)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, atol=2e-5)


@pytest.mark.parametrize("name", ["cosine", "euclidean", "poincare"])
def test_identical_across_chunk_sizes_and_budgets(data: np.ndarray, name: str) -> None:
    data = data[:120]  # chunk_size=1 means one scan step per query: keep it small
    ref_idx, ref_dist = knn(data, None, 20, name)
    for kwargs in (
        {"chunk_size": 1},
        {"chunk_size": 7},
        {"chunk_size": 119},
        {"chunk_size": 10**6},
        {"memory_budget_bytes": 1},
        {"memory_budget_bytes": 40_000},
    ):
        idx, dist = knn(data, None, 20, name, **kwargs)
        assert torch.equal(idx, ref_idx), kwargs
        assert torch.equal(dist, ref_dist), kwargs


@pytest.mark.parametrize("name", ["cosine", "euclidean", "poincare"])
def test_duplicates_never_return_self(name: str) -> None:
    # Every row identical: all other items tie, so each query gets the lowest other indices.
    x = np.full((6, 3), 0.2, dtype=np.float32)
    idx, dist = knn(x, None, 3, name, chunk_size=4)
    expected = [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2], [0, 1, 2]]
    assert idx.tolist() == expected
    assert torch.allclose(dist, torch.zeros_like(dist), atol=1e-3)


def test_ties_at_the_k_boundary_prefer_lower_index() -> None:
    # From query 0 (x=0): items 1..4 at distance 1 (x=+-1), item 5 at distance 0.5.
    x = np.array([[0.0], [1.0], [-1.0], [1.0], [-1.0], [0.5]], dtype=np.float32)
    idx, dist = knn(x, None, 3, "euclidean")
    assert idx[0].tolist() == [5, 1, 2]
    assert dist[0].tolist() == [0.5, 1.0, 1.0]
    assert idx[1].tolist() == [3, 5, 0]  # exact duplicate 3 first, never itself


def stable_reference(key: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    vals, idx = key.sort(dim=1, stable=True)
    return vals[:, :k], idx[:, :k]


@pytest.mark.parametrize("k", [5, 150, 300])
def test_selection_is_exact_on_large_rows_with_ties(k: int) -> None:
    # Rows of 10,000 keys exercise the sampled-bound path (k >= 128, n >= 32 k) and its
    # fallbacks: few distinct values (huge ties), a constant row, an ascending row (sampled
    # columns unrepresentative) and plain random rows.
    gen = torch.Generator().manual_seed(0)
    n = 10_000
    key = torch.rand((8, n), generator=gen)
    key[1] = torch.randint(0, 50, (n,), generator=gen).float()
    key[2] = 0.5
    key[3] = torch.arange(n, dtype=torch.float32)
    key[4] = torch.randint(0, 5000, (n,), generator=gen).float()
    key[5, ::7] = -1.0  # many ties below everything else
    key[6, torch.randperm(n, generator=gen)[:40]] = torch.inf
    key[7, ::16] = torch.arange(625) * 1e-6 - 1.0  # column patterns that could mislead a
    sampled = (torch.arange(n) % 512) < 16  # sampled bound (the second is topk.py's sample)
    key[0, sampled] = torch.arange(int(sampled.sum())) * 1e-6 - 2.0
    for row_batch in (1, 3, 100):
        vals, idx = topk_rows(key.clone(), k, row_batch)
        ref_vals, ref_idx = stable_reference(key, k)
        assert torch.equal(idx, ref_idx) and torch.equal(vals, ref_vals)


def test_separate_gallery_and_explicit_exclude_self(data: np.ndarray) -> None:
    copy = data.copy()
    idx, _ = knn(data, copy, 1)  # a distinct gallery: no exclusion by default
    assert idx[:, 0].tolist() == list(range(len(data)))
    idx_loo, _ = knn(data, copy, 1, exclude_self=True)
    assert torch.equal(idx_loo, knn(data, None, 1)[0])
    idx_same, _ = knn(data, data, 1)  # the same object is the same set
    assert torch.equal(idx_same, idx_loo)
    sub_idx, _ = knn(data[:10], data, 5)
    np.testing.assert_array_equal(sub_idx.numpy()[:, 0], np.arange(10))


def test_float64_and_tensor_inputs(data: np.ndarray) -> None:
    idx64, _ = knn(torch.from_numpy(data.astype(np.float64)), None, 5, "euclidean")
    np.testing.assert_array_equal(idx64.numpy(), brute_force(data, 5, "euclidean")[0])


def test_chunk_size_keeps_sop_scale_memory_bounded() -> None:
    n, k, budget = 60_502, 1001, 256 * MiB
    rows = query_chunk_size(n, k, 4, budget)
    assert rows >= 16 and rows % 16 == 0
    assert rows * (n * 4 + 4 * (k + 1) * 12) <= budget
    assert query_chunk_size(n, k, 4, 1) == 1


def test_bad_inputs() -> None:
    x = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\]"):
        knn(x, None, 5)
    with pytest.raises(ValueError, match=r"k must be an int"):
        knn(x, None, 0)
    with pytest.raises(ValueError, match="dim 3 but gallery has dim 2"):
        knn(x, np.zeros((5, 2), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="same length"):
        knn(x, np.zeros((4, 3), dtype=np.float32), 1, exclude_self=True)
    with pytest.raises(ValueError, match="2-D"):
        knn(np.zeros(5, dtype=np.float32), None, 1)
    with pytest.raises(ValueError, match="floating-point"):
        knn(np.zeros((5, 3), dtype=np.int64), None, 1)
    bad = x.copy()
    bad[[1, 3], 0] = [np.nan, np.inf]
    with pytest.raises(
        ValueError, match=r"2 of 5 rows contain NaN or inf; first bad rows: \[1, 3\]"
    ):
        knn(bad, None, 1)
    with pytest.raises(ValueError, match="valid names"):
        knn(x, None, 1, "hamming")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(data: np.ndarray) -> None:
    cpu_idx, cpu_dist = knn(data, None, 10)
    gpu_idx, gpu_dist = knn(data, None, 10, device="cuda")
    assert torch.equal(gpu_idx, cpu_idx)
    assert torch.allclose(gpu_dist, cpu_dist, atol=1e-5)

"""Exact chunked k-NN: brute-force agreement, leave-one-out by index, ties, chunk invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlantis.evaluation.knn import MiB, knn, query_chunk_size
from atlantis.evaluation.topk import _select_numpy, _select_torch, topk_rows


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


def test_separate_gallery_is_chunk_and_thread_invariant(data: np.ndarray) -> None:
    # Bitwise, on any CPU: every key comes from one fixed-shape block (evaluation/blocks.py),
    # whatever the chunking or the number of worker threads.
    queries, gallery = data[:70], data[70:]
    ref_idx, ref_dist = knn(queries, gallery, 9, "euclidean")
    before = torch.get_num_threads()
    try:
        for threads, kwargs in ((1, {"chunk_size": 3}), (2, {"chunk_size": 64}), (1, {})):
            torch.set_num_threads(threads)
            idx, dist = knn(queries, gallery, 9, "euclidean", **kwargs)
            assert torch.equal(idx, ref_idx) and torch.equal(dist, ref_dist), kwargs
    finally:
        torch.set_num_threads(before)


def test_bounded_selection_path_is_chunk_invariant() -> None:
    # n >= 32 (k+1) and k >= 127: the scan takes topk.py's sampled-bound selection.
    x = np.random.default_rng(5).normal(size=(5000, 24)).astype(np.float32)
    x[100] = x[7]  # an exact duplicate pair: each must find the other, never itself
    ref_idx, ref_dist = knn(x, None, 150)
    assert ref_idx[7, 0] == 100 and ref_idx[100, 0] == 7
    assert not (ref_idx == torch.arange(5000)[:, None]).any()
    for kwargs in ({"chunk_size": 16}, {"chunk_size": 333}, {"memory_budget_bytes": 4 * MiB}):
        idx, dist = knn(x, None, 150, **kwargs)
        assert torch.equal(idx, ref_idx) and torch.equal(dist, ref_dist), kwargs


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


def adversarial_keys(rows: int = 10, n: int = 10_000) -> torch.Tensor:
    """Rows that stress the sampled bound of topk.py and its fallbacks.

    Few distinct values (huge ties), a constant row, an ascending row, ties below
    everything, +inf entries, and column patterns aligned with a strided sample or with
    topk.py's run sample (so the bound keeps too few keys); the rest are random.
    """
    gen = torch.Generator().manual_seed(0)
    key = torch.rand((rows, n), generator=gen)
    key[1] = torch.randint(0, 50, (n,), generator=gen).float()
    key[2] = 0.5
    key[3] = torch.arange(n, dtype=torch.float32)
    key[4] = torch.randint(0, 5000, (n,), generator=gen).float()
    key[5, ::7] = -1.0
    key[6, torch.randperm(n, generator=gen)[:40]] = torch.inf
    key[7, ::16] = torch.arange(len(range(0, n, 16))) * 1e-6 - 1.0
    sampled = (torch.arange(n) % 512) < 16
    key[0, sampled] = torch.arange(int(sampled.sum())) * 1e-6 - 2.0
    return key


@pytest.mark.parametrize("k", [5, 150, 300])
def test_selection_matches_stable_sort(k: int) -> None:
    # k >= 127 with n >= 32 (k+1) takes the sampled-bound path; k = 5 a plain topk.
    key = adversarial_keys()
    ref_vals, ref_idx = key.sort(dim=1, stable=True)
    for row_batch in (1, 3, 100):
        vals, idx = topk_rows(key.clone(), k, row_batch)
        assert torch.equal(idx, ref_idx[:, :k]) and torch.equal(vals, ref_vals[:, :k])


@pytest.mark.parametrize("m", [151, 301])
def test_torch_and_numpy_selections_agree(m: int) -> None:
    # The torch selection serves GPUs; run it on CPU here against the numpy one (CPU path).
    key = adversarial_keys()
    ref = key.sort(dim=1).values[:, :m]
    t_vals, t_idx, t_ok = _select_torch(key, m)
    n_vals, n_idx, n_ok = (torch.from_numpy(a) for a in _select_numpy(key.numpy(), m))
    assert torch.equal(t_ok, n_ok) and not bool(t_ok.all()) and bool(t_ok.any())
    for vals, idx in ((t_vals, t_idx), (n_vals, n_idx)):
        assert torch.equal(vals[t_ok].sort(dim=1).values, ref[t_ok])
        assert torch.equal(key.gather(1, idx)[t_ok], vals[t_ok])


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


def test_query_tiles_shrink_only_for_huge_galleries() -> None:
    from atlantis.evaluation.blocks import TILE, row_tile_for

    assert row_tile_for(60_502) == TILE  # SOP: whole tiles within the default budget
    assert row_tile_for(10**6) == 32 and row_tile_for(10**6, itemsize=8) == 16
    assert row_tile_for(10**9) == 16  # never below 16 rows
    assert query_chunk_size(10**6, 10, 4, 256 * MiB, tile=32) % 32 == 0


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

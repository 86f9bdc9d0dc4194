"""Exact k-nearest-neighbour search in memory-bounded query chunks (torch, CPU or CUDA).

Why not a full distance matrix: at SOP scale (60,502 images) it would take 14.6 GB in float32.
Instead queries are scanned in chunks whose size is derived from a memory budget, so the
working memory stays bounded whatever the number of images; each chunk is one GEMM against
the whole gallery followed by a top-k.

Guarantees that retrieval metrics depend on:

* **Leave-one-out by index.** When the query set is the gallery, query ``i``'s own entry
  (gallery index ``i``) is set to ``+inf`` before the top-k. Exact duplicates therefore
  stay legitimate neighbours of each other, but a query can never retrieve itself, however
  the distances tie.
* **Deterministic ties.** Neighbours are ordered by (ranking key, gallery index): among equal
  keys the lower gallery index comes first, including at the k-th position boundary. The
  result is thus a function of the keys only, not of topk internals.
* **Chunk invariance, on any CPU.** Every key comes from one canonical fixed-shape GEMM
  block (:mod:`atlantis.evaluation.blocks`), so indices *and* distances are bit-identical
  for every chunk size, memory budget and thread count. What is not promised is equality
  across machines or BLAS builds: there distances agree to float rounding (~1e-6 relative)
  and neighbours whose distances tie within that rounding may swap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from atlantis.evaluation.blocks import TILE, BlockGrid, row_tile_for
from atlantis.evaluation.distances import (
    DEFAULT_CURVATURE,
    Distance,
    Prepared,
    get_distance,
    single_threaded_blas,
)
from atlantis.evaluation.topk import topk_rows

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "KnnChunk",
    "as_embeddings",
    "iter_knn",
    "knn",
    "query_chunk_size",
    "scan_grid",
]

MiB = 1 << 20
DEFAULT_MEMORY_BUDGET = 256 * MiB

_INDEX_BYTES = 8  # int64 indices returned by topk / sort


class KnnChunk(NamedTuple):
    """Neighbours of queries ``start .. start + len(indices)``: int64 indices, float32 distances."""

    start: int
    indices: Tensor
    distances: Tensor


def as_embeddings(x: Any, name: str = "embeddings") -> Tensor:
    """Validate a [num_items, dim] float matrix and return it as a tensor (no copy if possible).

    Checks happen before any search so that a bad input fails fast with a message saying what
    was expected, instead of NaNs silently ranking last (or first) in every top-k.
    """
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if not arr.flags.writeable:  # torch cannot wrap read-only memory without a warning
            arr = arr.copy()
        if arr.dtype == object:
            raise ValueError(f"{name}: expected a numeric 2-D array, got an object array")
        t = torch.from_numpy(arr)
    if t.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array [num_items, dim], got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected floating-point values, got dtype {t.dtype}")
    if t.shape[1] == 0:
        raise ValueError(f"{name}: expected dim >= 1, got shape {tuple(t.shape)}")
    bad = (~torch.isfinite(t).all(dim=1)).nonzero().flatten()
    if bad.numel() > 0:
        raise ValueError(
            f"{name}: {bad.numel()} of {t.shape[0]} rows contain NaN or inf; "
            f"first bad rows: {bad[:5].tolist()}"
        )
    return t


def query_chunk_size(
    num_gallery: int,
    k: int,
    itemsize: int = 4,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    tile: int = TILE,
) -> int:
    """Number of queries per chunk so that one chunk's working memory fits the budget.

    Per query row a chunk holds one row of ranking keys (``num_gallery`` values) and one row
    of candidate flags (1 byte each), plus a few copies of up to ``4 (k+1)`` candidates (see
    :mod:`atlantis.evaluation.topk`: positions, a padded candidate table, selection output
    and sorts). The budget does not cover the fixed cost of the prepared gallery (one
    [N, dim] copy at most) nor one canonical block per worker thread. At least one query is
    processed, even if one row exceeds it; chunks of at least a ``tile`` of query rows are
    whole tiles, so that no block is computed twice.
    """
    if memory_budget_bytes <= 0:
        raise ValueError(f"memory_budget_bytes must be > 0, got {memory_budget_bytes}")
    per_candidate = 4 * 2 * _INDEX_BYTES + 8 * (itemsize + _INDEX_BYTES)
    per_row = num_gallery * (itemsize + 1) + (k + 1) * per_candidate
    rows = int(memory_budget_bytes // per_row)
    return max(1, rows // tile * tile if rows >= tile else rows)


def _fill_keys(
    grid: BlockGrid, start: int, stop: int, out: Tensor, pool: ThreadPoolExecutor | None
) -> None:
    """Write the keys of grid rows ``start .. stop`` into ``out`` (grid column order)."""
    jobs = []
    for a in range(start // grid.row_tile, -(-stop // grid.row_tile)):
        span = grid.query_span(a)
        lo, hi = max(start, span.start), min(stop, span.stop)
        rows = slice(lo - span.start, hi - span.start)
        dst = out[lo - start : hi - start]
        for b in range(grid.gallery_tiles):

            def job(a: int = a, b: int = b, rows: slice = rows, dst: Tensor = dst) -> None:
                dst[:, grid.gallery_span(b)] = grid.keys(a, b, rows)

            if pool is None:
                job()
            else:
                jobs.append(pool.submit(job))
    for j in jobs:
        j.result()


def _reorder_ties(key: Tensor, vals: Tensor, idx: Tensor, k: int, order: np.ndarray
                  ) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Top-k of a grid laid over ``order``: break ties by original index, not position.

    ``vals, idx`` hold the ``k + 1`` smallest keys per row (grid positions, ties by
    position). Equal keys are common at scale (float32 keys of 60k items), so rows with
    ties inside their top k are re-sorted there by (key, original index); only rows where
    the k-th and (k+1)-th keys tie, so that the set itself may change, are sorted in full.
    """
    orig = torch.from_numpy(order).to(idx.device)
    idx_o = orig[idx]
    tied = (vals[:, 1:] == vals[:, :-1]).any(dim=1).nonzero().flatten()
    if tied.numel() > 0:
        v, i = vals[tied].cpu().numpy(), idx_o[tied].cpu().numpy()
        perm = np.lexsort((i, v), axis=-1)
        vals[tied] = torch.from_numpy(np.take_along_axis(v, perm, 1)).to(vals.device)
        idx_o[tied] = torch.from_numpy(np.take_along_axis(i, perm, 1)).to(idx.device)
    boundary = torch.zeros(0, dtype=torch.int64)
    if vals.shape[1] > k:
        boundary = (vals[:, k - 1] == vals[:, k]).nonzero().flatten()
    vals, idx_o = vals[:, :k].clone(), idx_o[:, :k].clone()
    for r in boundary.tolist():
        row = key[r].cpu().numpy()
        best = np.lexsort((order, row))[:k]
        vals[r] = torch.from_numpy(row[best]).to(vals.device)
        idx_o[r] = orig[torch.from_numpy(best).to(idx.device)]
    return vals, idx_o


def scan_grid(
    grid: BlockGrid,
    k: int,
    *,
    exclude_self: bool,
    chunk_size: int,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    """Top-k of every grid row, one chunk of grid rows at a time.

    Yields ``(start, stop, indices, keys)``: grid rows ``start .. stop`` (original query
    ``grid.order[p]`` for row ``p`` when the grid has an order), their ``k`` nearest
    original gallery indices and ranking keys, ordered by (key, original gallery index).
    """
    dev = grid.q.x.device
    n = grid.num_queries
    # The selection's worst case (every key of a row tied: fallback topk / stable sort) holds
    # about two copies of a row's keys plus int64 indices: batch rows within the budget too.
    itemsize = grid.q.x.element_size()
    row_batch = max(1, memory_budget_bytes // (2 * grid.num_gallery * (itemsize + _INDEX_BYTES)))
    rows_max = min(chunk_size, n)
    buffer = torch.empty((rows_max, grid.num_gallery), dtype=grid.q.x.dtype, device=dev)
    workers = max(1, torch.get_num_threads()) if dev.type == "cpu" else 1
    k_sel = k if grid.order is None else min(k + 1, grid.num_gallery)
    with contextlib.ExitStack() as stack:
        stack.enter_context(single_threaded_blas())
        pool = stack.enter_context(ThreadPoolExecutor(workers)) if workers > 1 else None
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            key = buffer[: stop - start]
            _fill_keys(grid, start, stop, key, pool)
            if exclude_self:
                rows = torch.arange(stop - start, device=dev)
                key[rows, rows + start] = torch.inf
            vals, idx = topk_rows(key, k_sel, row_batch)
            if grid.order is not None:
                vals, idx = _reorder_ties(key, vals, idx, k, grid.order)
            yield start, stop, idx, vals


def iter_knn(
    queries: Any,
    gallery: Any | None,
    k: int,
    distance: str | Distance = "cosine",
    *,
    exclude_self: bool | None = None,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    curvature: float = DEFAULT_CURVATURE,
) -> Iterator[KnnChunk]:
    """Yield the k nearest gallery items of each query, one query chunk at a time.

    Streaming lets callers reduce each chunk immediately, so even K=1000 at SOP scale never
    materialises the [N, K] result. Arguments are as in :func:`knn`.
    """
    dist = get_distance(distance, curvature)
    same_set = gallery is None or gallery is queries
    if exclude_self is None:
        exclude_self = same_set
    q_raw = as_embeddings(queries, "queries")
    g_raw = q_raw if same_set else as_embeddings(gallery, "gallery")
    if q_raw.shape[0] == 0:
        raise ValueError("queries: expected at least 1 row")
    if q_raw.shape[1] != g_raw.shape[1]:
        raise ValueError(f"queries have dim {q_raw.shape[1]} but gallery has dim {g_raw.shape[1]}")
    if exclude_self and q_raw.shape[0] != g_raw.shape[0]:
        raise ValueError(
            "exclude_self=True means query i is gallery item i, so both need the same length; "
            f"got {q_raw.shape[0]} queries and {g_raw.shape[0]} gallery items"
        )
    num_gallery = g_raw.shape[0]
    candidates = num_gallery - int(bool(exclude_self))
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= candidates:
        raise ValueError(
            f"k must be an int in [1, {candidates}] (gallery size {num_gallery}"
            f"{', minus the query itself' if exclude_self else ''}), got {k!r}"
        )
    k = int(k)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    dev = torch.device(device) if device is not None else q_raw.device
    dtype = torch.float64 if torch.float64 in (q_raw.dtype, g_raw.dtype) else torch.float32
    itemsize = torch.finfo(dtype).bits // 8
    g = dist.prepare(g_raw.to(dev, dtype))
    # Not the symmetric grid even for a same-set search: a top-k scan reads whole rows, so
    # sharing transposed blocks would only add copies.
    q = g if same_set else dist.prepare(q_raw.to(dev, dtype))
    grid = BlockGrid(dist, q, g, row_tile=row_tile_for(num_gallery, itemsize))
    if chunk_size is None:
        chunk_size = query_chunk_size(num_gallery, k, itemsize, memory_budget_bytes,
                                      grid.row_tile)  # fmt: skip
    for start, stop, idx, vals in scan_grid(
        grid,
        k,
        exclude_self=bool(exclude_self),
        chunk_size=chunk_size,
        memory_budget_bytes=memory_budget_bytes,
    ):
        q = Prepared(*(None if t is None else t[start:stop] for t in grid.q))
        distances = dist.finalize(vals, q).to("cpu", torch.float32)
        yield KnnChunk(start, idx.to("cpu", torch.int64), distances)


def knn(
    queries: Any,
    gallery: Any | None,
    k: int,
    distance: str | Distance = "cosine",
    *,
    exclude_self: bool | None = None,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    curvature: float = DEFAULT_CURVATURE,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of every query in the gallery.

    Args:
        queries: [Nq, d] float array or tensor.
        gallery: [Ng, d] float array or tensor, or ``None`` to search the queries themselves.
        k: neighbours per query, at most Ng (Ng - 1 when excluding self).
        distance: ``"cosine"``, ``"euclidean"`` or ``"poincare"`` (see ``DISTANCES``).
        exclude_self: drop gallery item ``i`` from query ``i``'s results (by index). ``None``
            (default) does so exactly when the query set is the gallery (``gallery is None``
            or ``gallery is queries``); pass ``True`` for an equal copy of the queries.
        memory_budget_bytes: target working memory per query chunk (see
            :func:`query_chunk_size`); it changes speed, never results.
        chunk_size: queries per chunk, overriding the budget-derived size.
        device: where to compute (e.g. ``"cuda"``); defaults to the queries' device.
        curvature: Poincaré ball curvature ``c`` (ignored by other distances).

    Returns:
        ``(indices, distances)``: CPU tensors [Nq, k], int64 and float32, nearest first;
        equal keys are ordered by lower gallery index.
    """
    chunks = list(
        iter_knn(
            queries,
            gallery,
            k,
            distance,
            exclude_self=exclude_self,
            memory_budget_bytes=memory_budget_bytes,
            chunk_size=chunk_size,
            device=device,
            curvature=curvature,
        )
    )
    return torch.cat([c.indices for c in chunks]), torch.cat([c.distances for c in chunks])

"""Exact leave-one-out ranks of every query's positives, by counting instead of top-k.

A query is a hit at K exactly when fewer than K other items come before its nearest
same-label item in the neighbour order (key, then original index). So Recall@K for every K,
and per-class R@1, need one number per query: the *rank* of its nearest positive, i.e. how
many items precede it. MAP@R needs the ranks of the positives that land in the top R
(R = class size - 1). Counting items below a known threshold is one compare per key, far
cheaper than selecting the top 1000 of every row, which is what a k-NN scan must do.

The scan runs in two passes over the symmetric canonical grid of
:mod:`atlantis.evaluation.blocks`, laid over the items sorted by label so that each class
sits in one or two neighbouring tiles:

1. the *band* blocks (those holding same-label pairs) give every query the keys of all its
   positives, sorted by (key, original index): the thresholds;
2. every block ``a <= b`` is multiplied once and serves both tiles: for each query row and
   each still-open threshold, a compiled loop (numba) counts the items that precede it.
   A threshold closes once its count reaches what any metric can use (``max K`` for the
   nearest positive, ``R`` for the others), so most rows compare against one or two.

Keys are computed from the dot blocks by the same elementwise formula, in the same order,
as :meth:`Distance.key_from_dot`, so a top-k scan of the same grid orders items by the very
same floats: the two methods give identical Recall@K (the tests hold them to that).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from atlantis.evaluation.blocks import BlockGrid
from atlantis.evaluation.distances import single_threaded_blas
from atlantis.evaluation.rank_kernels import collect_positive_keys, count_block, sort_thresholds

__all__ = ["PositiveRanks", "count_positive_ranks", "label_grid_order", "threshold_bytes"]


class PositiveRanks(NamedTuple):
    """Per original query: the rank of each positive, nearest first (CSR layout).

    ``ranks[offsets[i] + j]`` is the 0-based rank of query ``i``'s ``j``-th nearest positive,
    exact where it is below ``caps`` (``cap0`` for ``j = 0``, else the query's ``R``), and
    some value >= that cap otherwise.
    """

    offsets: np.ndarray
    ranks: np.ndarray
    num_positives: np.ndarray


def threshold_bytes(codes: np.ndarray, need_all: bool, itemsize: int, workers: int) -> int:
    """Memory the thresholds and per-worker counts take (to decide if this method fits)."""
    r = np.bincount(codes)[codes] - 1
    m = int(r.sum() if need_all else np.minimum(r, 1).sum())
    return m * (itemsize + 8 + 8 * workers)


def _class_ranges(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class start, class end) per grid position of items laid in label order."""
    counts = np.bincount(sorted_codes)
    ends = np.cumsum(counts)
    starts = ends - counts
    return starts[sorted_codes], ends[sorted_codes]


def _band_blocks(grid: BlockGrid, class_end: np.ndarray) -> Iterator[tuple[int, int]]:
    """Blocks ``a <= b`` that hold same-label pairs (classes are contiguous runs)."""
    for a in range(grid.query_tiles):
        span = grid.query_span(a)
        last = int(class_end[span].max()) - 1
        yield from ((a, b) for b in range(a, last // grid.tile + 1))


def _stats(grid: BlockGrid) -> tuple[np.ndarray, np.ndarray]:
    """Squared norms and Poincaré weights per grid position (zeros where unused)."""
    p = grid.q
    zeros = np.zeros(grid.num_queries, dtype=p.x.numpy().dtype)
    sq = zeros if p.sq_norm is None else np.ascontiguousarray(p.sq_norm.numpy())
    w = zeros if p.weight is None else np.ascontiguousarray(p.weight.numpy())
    return sq, w


def _run_blocks(grid: BlockGrid, blocks: list[tuple[int, int]], workers: int, body: object) -> None:
    """Run ``body(worker, a, b, dot)`` on every block, ``workers`` threads pulling blocks."""
    lock = threading.Lock()
    it = iter(blocks)

    def worker(w: int) -> None:
        buffer = grid.q.x.new_empty((grid.tile, grid.tile))
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                return
            a, b = nxt
            body(w, a, b, grid.dot(a, b, out=buffer).numpy())  # type: ignore[operator]

    with single_threaded_blas():
        if workers == 1:
            worker(0)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="atlantis-rank") as pool:
            for f in [pool.submit(worker, w) for w in range(workers)]:
                f.result()


def count_positive_ranks(
    grid: BlockGrid, codes: np.ndarray, kmax: int, need_all: bool, workers: int | None = None
) -> PositiveRanks:
    """Rank of every query's positives on a label-ordered symmetric grid (CPU).

    Args:
        grid: a symmetric grid laid over ``order`` from :func:`label_grid_order`.
        codes: int64 class code per original item.
        kmax: the largest cut-off that needs an exact rank of the nearest positive.
        need_all: also rank the other positives (for MAP@R); else only the nearest.
        workers: threads (default ``torch.get_num_threads()``).
    """
    if grid.order is None or not grid.symmetric:
        raise ValueError("count_positive_ranks needs a symmetric grid laid over the label order")
    workers = max(1, workers or torch.get_num_threads())
    order = grid.order
    sorted_codes = codes[order]
    if np.any(sorted_codes[1:] < sorted_codes[:-1]):
        raise ValueError("count_positive_ranks: the grid's order must sort the items by label")
    class_start, class_end = _class_ranges(sorted_codes)
    n = len(codes)
    r_pos = class_end - class_start - 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(r_pos, out=offsets[1:])
    sq, w = _stats(grid)
    dtype = sq.dtype
    kind = grid.dist.kernel_id
    orig = order.astype(np.int64)

    tkey = np.full(int(offsets[-1]), np.inf, dtype=dtype)

    def collect(_: int, a: int, b: int, dot: np.ndarray) -> None:
        r0, c0 = grid.query_span(a).start, grid.gallery_span(b).start
        collect_positive_keys(dot, r0, c0, a == b, kind, sq, w, class_start, class_end,
                              offsets, tkey)  # fmt: skip

    _run_blocks(grid, list(_band_blocks(grid, class_end)), workers, collect)
    tidx = sort_thresholds(offsets, tkey, class_start, orig)
    if not need_all:  # keep the nearest positive only
        first = offsets[:-1][r_pos > 0]
        tkey, tidx = tkey[first], tidx[first]
        r_used = np.minimum(r_pos, 1)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(r_used, out=offsets[1:])
    else:
        r_used = r_pos
    # The nearest positive's rank is needed up to max K (R@K), and up to R for MAP@R.
    cap0 = (np.maximum(kmax, r_pos) if need_all else np.full(n, kmax)).astype(np.int64)
    counts = [np.zeros(len(tkey), dtype=np.int64) for _ in range(workers)]
    active = [r_used.astype(np.int64) for _ in range(workers)]

    def count(wk: int, a: int, b: int, dot: np.ndarray) -> None:
        r0, c0 = grid.query_span(a).start, grid.gallery_span(b).start
        count_block(dot, r0, c0, a == b, kind, sq, w, orig, offsets, tkey, tidx, cap0, r_pos,
                    active[wk], counts[wk])  # fmt: skip

    _run_blocks(grid, list(grid.upper_blocks()), workers, count)
    total = np.sum(counts, axis=0) if workers > 1 else counts[0]
    # Back to original query order.
    inv_offsets = np.zeros(n + 1, dtype=np.int64)
    r_orig = np.empty(n, dtype=np.int64)
    r_orig[orig] = r_used
    np.cumsum(r_orig, out=inv_offsets[1:])
    ranks = np.empty_like(total)
    src = np.repeat(offsets[:-1], r_used) + _ramp(r_used)
    dst = np.repeat(inv_offsets[orig], r_used) + _ramp(r_used)
    ranks[dst] = total[src]
    num_pos = np.empty(n, dtype=np.int64)
    num_pos[orig] = r_pos
    return PositiveRanks(inv_offsets, ranks, num_pos)


def _ramp(lengths: np.ndarray) -> np.ndarray:
    """``[0..l0-1, 0..l1-1, ...]`` for segment lengths ``l``."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts


def label_grid_order(codes: np.ndarray) -> np.ndarray:
    """The permutation a rank-counting grid is laid over: items stably sorted by label."""
    return np.argsort(codes, kind="stable")

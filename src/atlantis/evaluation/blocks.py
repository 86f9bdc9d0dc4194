"""The canonical block grid of an exact scan: which GEMM call produces each key.

A BLAS kernel's rounding depends on the shape of the call (row and column counts modulo its
micro-tiles, small-matrix paths, K blocking), and different CPUs differ. So instead of one
GEMM per query chunk, whose shape follows the chunk size and the memory budget, every key
comes from one *canonical block*: queries and gallery are cut into fixed tiles of
``tile`` items (counted from item 0), and the dot products of query tile ``a`` with gallery
tile ``b`` are always one GEMM of exactly those two tiles. A key therefore depends only on
the data, the tile size and the machine, never on chunk sizes, memory budgets or thread
counts: chunked searches are bit-identical to unchunked ones on any CPU whose BLAS is
deterministic for a given call (OpenBLAS and MKL are, single-threaded), and two scans that
share a grid (the top-k search and the rank counter of Recall@K) see the very same floats.

A grid built without a gallery (the leave-one-out scans of Recall@K) is *symmetric*: only blocks
``a <= b`` are multiplied and block ``(b, a)`` is the transpose of ``(a, b)``. That halves
the GEMM work of the rank counter (each block serves both tiles) and keeps the top-k scan,
which reads whole rows, on the same floats. Plain k-NN searches use the non-symmetric
grid, with query tiles shortened for very large galleries (:func:`row_tile_for`).

``order`` lays the grid over a permutation of the items (the rank counter sorts items by
label so that every class sits in a few neighbouring tiles); it changes which rounding a key
gets, never the semantics: callers still see and tie-break by original item indices.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from atlantis.evaluation.distances import Distance, Prepared, matmul_nt

__all__ = ["TILE", "BlockGrid", "row_tile_for"]

TILE = 512
"""Items per tile. 512 x 512 float32 blocks (1 MiB) kept OpenBLAS within ~10 % of its best
single-thread SGEMM rate at dim 128 on the EPYC machines this was tuned on, and a tile row of
SOP's 60,502-item gallery (124 MB) fits the default memory budget of a top-k scan."""


ROW_BLOCK_BYTES = 128 << 20
"""A top-k scan holds whole key rows; tiles of a non-symmetric grid are cut shorter for
galleries so large that ``TILE`` rows of keys would exceed this (a chunk smaller than a
tile recomputes the tile's blocks, so tiles should fit in a scan's memory budget)."""


def row_tile_for(num_gallery: int, itemsize: int = 4) -> int:
    """Query rows per tile of a top-k grid: ``TILE``, or a power of two >= 16 below it for
    galleries whose ``TILE`` key rows exceed ``ROW_BLOCK_BYTES``. A function of the gallery
    size alone, so chunk sizes and memory budgets never change a key."""
    rows = ROW_BLOCK_BYTES // max(1, num_gallery * itemsize)
    return max(16, min(TILE, 1 << max(0, int(rows).bit_length() - 1)))


def _take(p: Prepared, rows: slice | np.ndarray) -> Prepared:
    return Prepared(*(None if t is None else t[rows] for t in p))


class BlockGrid:
    """Canonical dot-product blocks of ``queries x gallery`` (``gallery=None``: the same set).

    Args:
        dist: the distance whose ``key_from_dot`` turns dot blocks into ranking keys.
        queries: prepared query rows, in original order.
        gallery: prepared gallery rows, or ``None`` for a leave-one-out scan of ``queries``.
        order: permutation of the items along which the tiles are laid (same-set grids
            only); position ``p`` of the grid holds original item ``order[p]``.
        tile: items per tile (gallery tiles; query tiles too unless ``row_tile``).
        row_tile: query items per tile of a non-symmetric grid (default ``tile``).
    """

    def __init__(
        self,
        dist: Distance,
        queries: Prepared,
        gallery: Prepared | None = None,
        *,
        order: np.ndarray | None = None,
        tile: int = TILE,
        row_tile: int | None = None,
    ) -> None:
        if tile < 1 or (row_tile is not None and row_tile < 1):
            raise ValueError(f"tiles must be >= 1, got {tile} and {row_tile}")
        if row_tile not in (None, tile) and gallery is None:
            raise ValueError("a symmetric grid has square tiles: row_tile applies to galleries")
        if order is not None and gallery is not None:
            raise ValueError("order applies to same-set (leave-one-out) grids only")
        self.dist = dist
        self.tile = tile
        self.row_tile = tile if row_tile is None else row_tile
        self.symmetric = gallery is None
        n = queries.x.shape[0]
        self.order = None if order is None else np.asarray(order, dtype=np.int64)
        if self.order is not None:
            if self.order.shape != (n,) or not np.array_equal(np.sort(self.order), np.arange(n)):
                raise ValueError(f"order must be a permutation of range({n})")
            queries = _take(queries, torch.from_numpy(self.order).to(queries.x.device))
        self.q = queries
        self.g = queries if gallery is None else gallery
        self.num_queries = n
        self.num_gallery = self.g.x.shape[0]

    # -- tiles -----------------------------------------------------------------------------

    @property
    def query_tiles(self) -> int:
        return -(-self.num_queries // self.row_tile)

    @property
    def gallery_tiles(self) -> int:
        return -(-self.num_gallery // self.tile)

    def query_span(self, a: int) -> slice:
        return slice(a * self.row_tile, min((a + 1) * self.row_tile, self.num_queries))

    def gallery_span(self, b: int) -> slice:
        return slice(b * self.tile, min((b + 1) * self.tile, self.num_gallery))

    # -- blocks ----------------------------------------------------------------------------

    def dot(self, a: int, b: int, out: Tensor | None = None) -> Tensor:
        """Dot products of query tile ``a`` with gallery tile ``b`` ([rows_a, rows_b]).

        In a symmetric grid, ``a > b`` returns the transpose (a view) of block ``(b, a)``:
        only ``a <= b`` is ever multiplied, so both orientations share one rounding.
        ``out`` (a contiguous buffer of at least the block's size, ``a <= b`` only) is
        reused instead of a fresh allocation, whose page faults cost as much as the GEMM.
        """
        if self.symmetric and a > b:
            if out is not None:
                raise ValueError("out is for blocks a <= b of a symmetric grid")
            return self.dot(b, a).T
        qa, gb = self.q.x[self.query_span(a)], self.g.x[self.gallery_span(b)]
        if out is not None:
            out = out.view(-1)[: qa.shape[0] * gb.shape[0]].view(qa.shape[0], gb.shape[0])
        return matmul_nt(qa, gb, out=out)

    def keys(self, a: int, b: int, rows: slice | None = None) -> Tensor:
        """Ranking keys of query tile ``a`` (its ``rows``, tile-relative) x gallery tile ``b``.

        Returns a new contiguous tensor; the same call always yields the same floats.
        """
        qs, gs = self.query_span(a), self.gallery_span(b)
        r0, r1, _ = (rows or slice(None)).indices(qs.stop - qs.start)
        d = self.dot(a, b)[r0:r1].contiguous()
        q_rows = _take(self.q, slice(qs.start + r0, qs.start + r1))
        return self.dist.key_from_dot(d, q_rows, _take(self.g, gs))

    def upper_blocks(self) -> Iterator[tuple[int, int]]:
        """Every block a symmetric scan multiplies: ``(a, b)`` with ``a <= b``."""
        for a in range(self.query_tiles):
            yield from ((a, b) for b in range(a, self.gallery_tiles))

"""Compiled (numba) loops of the rank counter in :mod:`atlantis.evaluation.rank_count`.

Why compiled: the counter's inner loop compares every key of a block with a few
thresholds. In numpy each compare is a pass that writes a boolean temporary and another
that sums it; a fused loop does it in one pass over a block that stays in cache, and runs
without the GIL so worker threads overlap it with their BLAS calls.

Key formulas (``kind`` = :attr:`Distance.kernel_id`) mirror ``Distance.key_from_dot``
operation for operation, with no fast-math, so both give the same float for the same dot:

* 0, cosine: ``-d``
* 1, euclidean: ``-(d + d) + sq[g]``
* 2, Poincaré: ``((-(d + d) + sq[g]) + sq[q]) * w[g]``
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["collect_positive_keys", "count_block", "sort_thresholds"]

_jit = numba.njit(nogil=True, cache=True, error_model="numpy")


@_jit
def _key(d, kind, sq_q, sq_g, w_g):  # type: ignore[no-untyped-def]
    """One key from one dot product (the scalar twin of the vector loops below)."""
    if kind == 0:
        return -d
    if kind == 1:
        return -(d + d) + sq_g
    return ((-(d + d) + sq_g) + sq_q) * w_g


@_jit
def _slot(p, k, start):  # type: ignore[no-untyped-def]
    """Slot of positive ``k`` among query ``p``'s positives (its class without ``p``)."""
    return k - start - (1 if k > p else 0)


@_jit
def collect_positive_keys(dot, r0, c0, diag, kind, sq, w, cls_start, cls_end, offsets, tkey):  # type: ignore[no-untyped-def]
    """Write the keys of the same-label pairs of block ``(r0.., c0..)`` into ``tkey``.

    Both orientations: row ``i`` as a query of the columns, and (off the diagonal) each
    column as a query of the rows. Slots follow class positions, i.e. original order.
    """
    nr, nc = dot.shape
    for i in range(nr):
        p = r0 + i
        for k in range(max(cls_start[p], c0), min(cls_end[p], c0 + nc)):
            if k != p:
                v = _key(dot[i, k - c0], kind, sq[p], sq[k], w[k])
                tkey[offsets[p] + _slot(p, k, cls_start[p])] = v
    if diag:
        return
    for i in range(nr):
        g = r0 + i
        for k in range(max(cls_start[g], c0), min(cls_end[g], c0 + nc)):  # query k, positive g
            v = _key(dot[i, k - c0], kind, sq[k], sq[g], w[g])
            tkey[offsets[k] + _slot(k, g, cls_start[k])] = v


@_jit
def sort_thresholds(offsets, tkey, cls_start, orig):  # type: ignore[no-untyped-def]
    """Sort each query's positive keys by (key, original index); return those indices."""
    n = len(offsets) - 1
    tidx = np.empty(len(tkey), np.int64)
    for p in range(n):
        o, e = offsets[p], offsets[p + 1]
        if e == o:
            continue
        seg = tkey[o:e].copy()
        perm = np.argsort(seg, kind="mergesort")  # stable: slots are in original order
        for j in range(e - o):
            s = perm[j]
            k = cls_start[p] + s + (1 if cls_start[p] + s >= p else 0)  # undo the self gap
            tkey[o + j] = seg[s]
            tidx[o + j] = orig[k]
    return tidx


@_jit
def _shrink(p, offsets, counts, cap0, r_pos, active):  # type: ignore[no-untyped-def]
    """Close thresholds whose count reached their cap (an open prefix stays open)."""
    o = offsets[p]
    j = 0
    a = active[p]
    while j < a and counts[o + j] < (cap0[p] if j == 0 else r_pos[p]):
        j += 1
    active[p] = j


_ONE = np.int32(1)
_ZERO = np.int32(0)


@_jit
def _hot_cosine(row, t, b, thr, bnd, below, flag):  # type: ignore[no-untyped-def]
    """One pass over a dot row: the row query's keys below ``t`` and at most ``b``, and the
    same for every column query (``thr``, ``bnd``). More keys at most ``b`` than below
    ``t`` flags the row (or column) for an exact rescan."""
    lt = _ZERO
    fl = _ZERO
    for k in range(row.shape[0]):
        v = -row[k]
        lt += _ONE if v < t else _ZERO
        fl += _ONE if v <= b else _ZERO
        below[k] += _ONE if v < thr[k] else _ZERO
        flag[k] += _ONE if v <= bnd[k] else _ZERO
    return lt, fl


@_jit
def _hot_euclidean(row, sq_p, sq_c, t, b, thr, bnd, below, flag):  # type: ignore[no-untyped-def]
    lt = _ZERO
    fl = _ZERO
    for k in range(row.shape[0]):
        d = row[k]
        m = -(d + d)
        vr = m + sq_c[k]
        vc = m + sq_p
        lt += _ONE if vr < t else _ZERO
        fl += _ONE if vr <= b else _ZERO
        below[k] += _ONE if vc < thr[k] else _ZERO
        flag[k] += _ONE if vc <= bnd[k] else _ZERO
    return lt, fl


@_jit
def _hot_poincare(row, sq_p, w_p, sq_c, w_c, t, b, thr, bnd, below, flag):  # type: ignore[no-untyped-def]
    lt = _ZERO
    fl = _ZERO
    for k in range(row.shape[0]):
        d = row[k]
        m = -(d + d)
        vr = ((m + sq_c[k]) + sq_p) * w_c[k]
        vc = ((m + sq_p) + sq_c[k]) * w_p
        lt += _ONE if vr < t else _ZERO
        fl += _ONE if vr <= b else _ZERO
        below[k] += _ONE if vc < thr[k] else _ZERO
        flag[k] += _ONE if vc <= bnd[k] else _ZERO
    return lt, fl


@_jit
def _open_bounds(q, offsets, tkey, active, closed):  # type: ignore[no-untyped-def]
    """(nearest open threshold, deepest open threshold) of query ``q``; ``closed`` if none.

    ``closed`` is -inf of the keys' dtype: a float64 -inf would widen every compare."""
    a = active[q]
    if a == 0:
        return closed, closed
    o = offsets[q]
    return tkey[o], tkey[o + a - 1]


@_jit
def _add_rare(v, og, q, offsets, tkey, tidx, active, counts):  # type: ignore[no-untyped-def]
    """Count an item (key ``v``, original index ``og``) at or above query ``q``'s nearest
    open threshold against each open threshold, ties broken by original index."""
    o = offsets[q]
    for j in range(active[q]):
        t = tkey[o + j]
        if v < t or (v == t and og < tidx[o + j]):
            counts[o + j] += 1


@_jit
def count_block(
    dot, r0, c0, diag, kind, sq, w, orig, offsets, tkey, tidx, cap0, r_pos, active, counts
):  # type: ignore[no-untyped-def]
    """Add block ``(r0.., c0..)``'s items to the open thresholds of both of its tiles.

    One fused pass per dot row serves the row's query and, off the diagonal, every column
    query: it counts keys strictly below the query's nearest open threshold (they precede
    every open threshold) and flags keys between its nearest and deepest open threshold.
    Flagged rows and columns, which hold exact ties and the few items between a query's
    positives, are then rescanned and counted exactly per threshold. Thresholds are
    read at the start of the block, so what the rows learn does not change the columns.
    """
    nr, nc = dot.shape
    dt = dot.dtype
    closed = np.full(1, -np.inf, dt)[0]  # nothing is below it
    thr = np.full(nc, -np.inf, dt)
    bnd = np.full(nc, -np.inf, dt)
    if not diag:
        for k in range(nc):
            thr[k], bnd[k] = _open_bounds(c0 + k, offsets, tkey, active, closed)
    below = np.zeros(nc, np.int32)
    flag = np.zeros(nc, np.int32)
    sq_c, w_c = sq[c0 : c0 + nc], w[c0 : c0 + nc]
    for i in range(nr):
        p = r0 + i
        t, b = _open_bounds(p, offsets, tkey, active, closed)
        row = dot[i]
        if kind == 0:
            lt, fl = _hot_cosine(row, t, b, thr, bnd, below, flag)
        elif kind == 1:
            lt, fl = _hot_euclidean(row, sq[p], sq_c, t, b, thr, bnd, below, flag)
        else:
            lt, fl = _hot_poincare(row, sq[p], w[p], sq_c, w_c, t, b, thr, bnd, below, flag)
        a = active[p]
        if a == 0:
            continue
        if diag:  # the query itself is no neighbour
            v = _key(row[i], kind, sq[p], sq[p], w[p])
            lt -= _ONE if v < t else _ZERO
            fl -= _ONE if v <= b else _ZERO
        o = offsets[p]
        for j in range(a):
            counts[o + j] += lt
        if fl > lt:
            for k in range(nc):
                if diag and k == i:
                    continue
                v = _key(row[k], kind, sq[p], sq_c[k], w_c[k])
                if v >= t and v <= b:
                    _add_rare(v, orig[c0 + k], p, offsets, tkey, tidx, active, counts)
        _shrink(p, offsets, counts, cap0, r_pos, active)
    if diag:
        return
    flagged = np.empty(nc, np.int64)
    nf = 0
    for k in range(nc):
        q = c0 + k
        a = active[q]
        if a == 0:
            continue
        o = offsets[q]
        for j in range(a):
            counts[o + j] += below[k]
        if flag[k] > below[k]:
            flagged[nf] = k
            nf += 1
    for i in range(nr if nf > 0 else 0):  # row-major rescan of the flagged columns
        g = r0 + i
        row = dot[i]
        for m in range(nf):
            k = flagged[m]
            v = _key(row[k], kind, sq_c[k], sq[g], w[g])
            if v >= thr[k] and v <= bnd[k]:
                _add_rare(v, orig[g], c0 + k, offsets, tkey, tidx, active, counts)
    for k in range(nc):
        _shrink(c0 + k, offsets, counts, cap0, r_pos, active)

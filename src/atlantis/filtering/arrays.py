"""Input checks, label indexing and small geometry helpers shared by the filters.

The filters take plain arrays (embeddings, labels) so they can be tested and benchmarked
without a run folder. Every input is checked before any computation, with a message that
says what was expected and how to fix it: a NaN row would otherwise sit silently at
distance NaN (never kept, never reported), and mismatched lengths would pair images with
the wrong labels. The geometry helpers (unit rows, chunked class means) are shared by ORDC
and the class-consistency rule, so both measure in the same space; so is the ``normalize``
decision (:func:`resolve_normalize`: ``"auto"`` normalises unless the real vectors are unit
length already).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["CHUNK_ROWS", "UNIT_TOL", "as_labels", "as_matrix", "check_delta", "class_indices",
           "class_means", "is_unit_length", "l2_normalize", "py_value", "resolve_normalize"]  # fmt: skip

#: Rows per chunk of the float64 temporaries (ORDC distances, class sums): ~32 MB.
CHUNK_ROWS = 1 << 15

#: ``normalize="auto"``: rows whose norms are all within this of 1 count as unit length.
UNIT_TOL = 1e-3

_KINDS = {"b": "number", "i": "number", "u": "number", "f": "number", "U": "text", "O": "text"}


def check_delta(delta: Any) -> float:
    """``delta`` as a float > 0 (``inf`` allowed), or a ValueError that says what to use."""
    try:
        value = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"delta must be a number > 0, got {delta!r}") from None
    if math.isnan(value) or value <= 0:
        raise ValueError(f"delta must be > 0; use inf for no filtering (got {delta!r})")
    return value


def as_matrix(x: Any, name: str, empty_dim: int | None = None) -> np.ndarray:
    """A finite [rows, dim] float array (float32 kept as is: no copy in the common case).

    ``[]`` (no rows at all) is accepted as ``[0, empty_dim]`` when ``empty_dim`` is given.
    """
    arr = np.asarray(x)
    if empty_dim is not None and arr.shape == (0,):
        arr = np.zeros((0, empty_dim), dtype=np.float32)
    numeric = np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    if arr.dtype == object or not numeric:
        raise ValueError(f"{name}: expected a numeric 2-D array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [num_images, dim], got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: expected dim >= 1, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        shown = ", ".join(map(str, bad[:10].tolist())) + (" ..." if bad.size > 10 else "")
        raise ValueError(
            f"{name}: {bad.size} of {len(arr)} rows contain NaN or inf (rows {shown}); "
            "re-embed those images or drop them"
        )
    return arr


def as_labels(y: Any, n: int, name: str, rows_name: str) -> np.ndarray:
    """A 1-D label array of length ``n`` (the row count of ``rows_name``)."""
    arr = y if isinstance(y, np.ndarray) else np.asarray(list(y))
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of labels, got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(
            f"{name} has {len(arr)} labels but {rows_name} has {n} rows; they must match"
        )
    return arr


def class_indices(*label_sets: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted distinct labels over all sets, and each set's items as indices into them.

    One ``np.unique`` over the concatenation gives every later step (group sums, per-class
    lookups) plain integer indices, which is what makes the filters vectorised.
    """
    parts = [y for y in label_sets if len(y)] or [label_sets[0]]  # [] has a dtype of its own
    # numpy would silently turn int 1 and str "1" into the same label: refuse to mix kinds.
    kinds = {_KINDS.get(y.dtype.kind, y.dtype.kind) for y in parts}
    try:
        if len(kinds) > 1:
            raise TypeError
        classes, inv = np.unique(np.concatenate(parts), return_inverse=True)
    except TypeError:  # also: an object array holding e.g. both ints and strs
        got = " vs ".join(str(y.dtype) for y in parts)
        raise ValueError(
            f"labels must all be of one comparable type (e.g. all str); got {got}"
        ) from None
    inv = inv.reshape(-1)
    out, start = [], 0
    for y in label_sets:
        out.append(inv[start : start + len(y)])
        start += len(y)
    return classes, out


def real_and_synthetic(
    real_embeddings: Any, real_labels: Any, synthetic_embeddings: Any, synthetic_labels: Any,
    normalize: bool | str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:  # fmt: skip
    """``(real, syn, y_real, y_syn, normalized)`` checked (shapes, matching dims, label
    counts) and, when ``normalize`` resolves to True (:func:`resolve_normalize`),
    L2-normalised: the inputs of every filter rule, validated one way. ``normalized`` is
    that resolved choice, for the rule's result to record."""
    real = as_matrix(real_embeddings, "real_embeddings")
    syn = as_matrix(synthetic_embeddings, "synthetic_embeddings", empty_dim=real.shape[1])
    if real.shape[1] != syn.shape[1]:
        raise ValueError(
            f"real_embeddings have dim {real.shape[1]} but synthetic_embeddings have dim "
            f"{syn.shape[1]}; embed both with the same embedder"
        )
    y_real = as_labels(real_labels, len(real), "real_labels", "real_embeddings")
    y_syn = as_labels(synthetic_labels, len(syn), "synthetic_labels", "synthetic_embeddings")
    normalized = resolve_normalize(normalize, real)
    if normalized:
        real, syn = l2_normalize(real), l2_normalize(syn)
    return real, syn, y_real, y_syn, normalized


def is_unit_length(x: np.ndarray, tol: float = UNIT_TOL) -> bool:
    """Whether every row of ``x`` has an L2 norm within ``tol`` of 1 (an empty set: True).

    This is what ``normalize="auto"`` asks of the real vectors. A trained metric head (the
    paper's baseline model) ends in an L2 normalisation, so its vectors are unit length and
    the filters measure them as they are, like the paper. A raw backbone's are not: there a
    vector's length carries contrast, exposure or size rather than identity, and radii and
    distances on the raw features mix that scale into what should be a cosine-style (angle)
    filter. ``tol`` is loose next to float32 rounding (~1e-7) and tight next to any raw
    backbone, whose norms spread over tens of percent.
    """
    if len(x) == 0:
        return True
    norms = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)
    return bool(np.all(np.abs(norms - 1.0) <= tol))


def resolve_normalize(normalize: bool | str, real: np.ndarray) -> bool:
    """The ``normalize`` setting as a decision: True / False as given; ``"auto"``: True
    unless the real vectors are already unit length (:func:`is_unit_length`)."""
    if isinstance(normalize, (bool, np.bool_)):
        return bool(normalize)
    if normalize == "auto":
        return not is_unit_length(real)
    raise ValueError(
        f"normalize must be True, False or 'auto' (L2-normalise unless the real vectors are "
        f"unit length already), got {normalize!r}"
    )


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12).astype(x.dtype)


def class_means(x: np.ndarray, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class means by ``np.add.at`` over float64 row chunks.

    The cast matters: ``add.at`` from float32 into float64 takes a slow casting path (4x
    slower in ``benchmarks/ordc.py``), and chunking keeps the float64 copy small for wide
    backbone features (60,000 x 1,280 would be 600 MB at once).
    """
    sums = np.zeros((len(counts), x.shape[1]), dtype=np.float64)
    for start in range(0, len(x), CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        np.add.at(sums, idx[start:stop], x[start:stop].astype(np.float64))
    return sums / np.maximum(counts, 1)[:, None]


def py_value(value: Any) -> Any:
    """numpy scalar -> plain Python (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value

"""Reading user-supplied ``.npy`` arrays with errors that name the file.

``atlantis recall`` takes two arrays from the user; every way they can be wrong (not a
``.npy``, empty, the wrong shape, NaN rows, labels of another length) must be reported as
one line that names the file and says how to fix it, before any compute starts. The
retrieval functions check their inputs too, but they only know the arrays, not the files
they came from; these loaders do the checks that need the file's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlantis.errors import DataError, InputError

#: Integers up to this magnitude are exact in float32; larger ones are cast to float64.
_FLOAT32_EXACT = 2**24
#: How many bad rows an error lists (the count says how many there are in all).
_SHOW_ROWS = 5


def load_npy(path: Path | str, what: str) -> np.ndarray:
    """Load a ``.npy`` file without pickles (object arrays are refused: they can run code)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} file not found", path)
    if path.is_dir():
        raise DataError(f"{what}: this is a folder; give a .npy file written by numpy.save", path)
    if path.stat().st_size == 0:
        raise DataError(
            f"{what} file is empty (0 bytes); write the array with numpy.save(path, array)", path
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(
            f"cannot read {what}: {e}. Save plain numeric/string arrays with numpy.save", path
        ) from None
    except (OSError, EOFError) as e:  # EOFError: a header cut short (click would say "Aborted")
        raise DataError(f"not a .npy file ({e}); save it with numpy.save", path) from None
    if not isinstance(arr, np.ndarray):  # an .npz archive loads as a lazy mapping of arrays
        raise DataError(
            f"{what}: this is an .npz archive, not a .npy file; save one array with numpy.save",
            path,
        )
    return arr


def load_embeddings(path: Path | str, what: str = "embeddings") -> np.ndarray:
    """A ``[num_items, dim]`` matrix of finite floats from a ``.npy`` file, for retrieval.

    Integer matrices (quantised embeddings) are accepted and cast to float: float32 when
    every value is exact in it, float64 otherwise, so no distance changes by the cast.
    """
    arr = load_npy(path, what)
    if arr.size == 0:
        raise InputError(
            f"{what}: the array is empty (shape {arr.shape}): nothing to evaluate; save the "
            "[num_items, dim] matrix, at least 2 rows, with numpy.save",
            path,
        )
    if arr.ndim != 2:
        hint = {
            0: "a single number; save a [num_items, dim] matrix",
            1: "one vector (or a flat list); save a [num_items, dim] matrix, e.g. "
            "numpy.stack(vectors)",
        }.get(arr.ndim, "reshape it to [num_items, dim], e.g. array.reshape(len(array), -1)")
        raise InputError(
            f"{what}: expected a 2-D array [num_items, dim], got shape {arr.shape}: {hint}", path
        )
    n, dim = arr.shape
    if n < 2:
        raise InputError(
            f"{what}: {n} row(s); leave-one-out Recall@K needs at least 2 items (each query "
            "is ranked against the others)",
            path,
        )
    if dim == 0:
        raise InputError(f"{what}: the rows have no values (shape {arr.shape})", path)
    if arr.dtype.kind in "iu":
        big = max(int(arr.max()), -int(arr.min())) > _FLOAT32_EXACT  # no abs(): it overflows
        arr = arr.astype(np.float64 if big else np.float32)
    elif arr.dtype.kind == "f" and arr.dtype.itemsize < 4:
        arr = arr.astype(np.float32)  # float16: no CPU distance kernel works on it
    elif arr.dtype.kind != "f":
        raise InputError(
            f"{what}: expected numbers, got dtype {arr.dtype}; save a float (or integer) matrix",
            path,
        )
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        rows = _rows(bad)
        raise InputError(
            f"{what}: {bad.size} of {n} rows contain NaN or inf ({rows}); "
            "fix or drop those rows, and their labels",
            path,
        )
    return arr


def load_labels(path: Path | str, num_items: int, embeddings: Path | str | None = None,
                what: str = "labels") -> np.ndarray:  # fmt: skip
    """One label (int or string) per embedding row, from a ``.npy`` file.

    ``embeddings`` names the matrix the labels belong to, so a length mismatch names both.
    """
    arr = load_npy(path, what)
    if arr.ndim != 1:
        hint = "flatten it with array.ravel()" if arr.ndim == 2 and 1 in arr.shape else (
            "save one label per embedding row")  # fmt: skip
        raise InputError(f"{what}: expected a 1-D array [num_items], got shape {arr.shape}; "
                         f"{hint}", path)  # fmt: skip
    if len(arr) != num_items:
        of = f" of {embeddings}" if embeddings is not None else ""
        raise InputError(
            f"{what}: {len(arr)} labels for the {num_items} embedding rows{of}; save exactly "
            "one label per row, in the same order",
            path,
        )
    if arr.dtype.kind not in "biufUS":
        raise InputError(f"{what}: expected integer or string labels, got dtype {arr.dtype}", path)
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise InputError(
                f"{what}: {bad.size} labels are NaN or inf ({_rows(bad)}); NaN never "
                "equals itself, so those items can never be a hit: give every item a class",
                path,
            )
    return arr


def _rows(rows: np.ndarray) -> str:
    """``row 3`` / ``rows 1, 4, 9 (0-based, first 5 shown)``: where to look in the array."""
    shown = ", ".join(map(str, rows[:_SHOW_ROWS].tolist()))
    more = f", first {_SHOW_ROWS} shown" if rows.size > _SHOW_ROWS else ""
    return f"{'row' if rows.size == 1 else 'rows'} {shown} (0-based{more})"

"""The ``cars196`` layout: Stanford Cars with its all-in-one ``cars_annos.mat``.

``cars_annos.mat`` (MATLAB v5) holds ``annotations``, a 1 x N struct array with fields
``relative_im_path`` (e.g. ``car_ims/000001.jpg``, relative to root), ``bbox_x1..bbox_y2``,
``class`` (1-based) and ``test`` (0/1); and ``class_names``, a 1 x 196 cell of strings.
``scipy.io.loadmat`` returns every MATLAB value as an array (a scalar is a 1 x 1 array, a
string a 1-element string array, a cell an object array), so values are unwrapped with
``_scalar`` before use. Classes are ordered by class index so the zero-shot split is the
literature's 1-98 / 99-196; the official test flag (an image split) is kept in meta only.
Cars has no image ids of its own, so a record's id is its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat

from atlantis.data.dataset import READERS, Dataset
from atlantis.data.readers.common import BadItems, check_image, resolve_under_root
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError

ANNOTATIONS_FILE = "cars_annos.mat"
FIELDS = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")


@READERS.register("cars196")
def read_cars196(root: Path, *, skip_bad: bool = False, verify_images: bool = True) -> Dataset:
    """Stanford Cars (196 classes): cars_annos.mat plus car_ims/."""
    file = root / ANNOTATIONS_FILE
    annotations, class_names = _load(file)
    bad = BadItems(skip_bad)
    records: list[ImageRecord] = []
    for index, entry in enumerate(annotations, start=1):
        raw_path = _scalar(entry["relative_im_path"])
        with bad.guard(path=raw_path if isinstance(raw_path, str) else None):
            where = f"annotation {index}"
            if not isinstance(raw_path, str):
                raise DataError(f"{where}: relative_im_path is not a string: {raw_path!r}", file)
            class_id = _integer(entry["class"], f"{where} ({raw_path}): class", file)
            if not 1 <= class_id <= len(class_names):
                raise DataError(
                    f"{where} ({raw_path}): class {class_id} is out of range 1..{len(class_names)}",
                    file,
                )
            is_test = _integer(entry["test"], f"{where} ({raw_path}): test", file)
            bbox = [_integer(entry[f], f"{where} ({raw_path}): {f}", file) for f in FIELDS[1:5]]
            rel, full = resolve_under_root(root, raw_path, file)
            bad.claim_id(rel, file)
            check_image(full, file, verify=verify_images)
            records.append(
                ImageRecord(
                    id=rel,
                    path=rel,
                    label=class_names[class_id - 1],
                    meta={"class_id": class_id, "official_test": bool(is_test), "bbox": bbox},
                )
            )
    return Dataset(
        format="cars196", root=root, classes=class_names, records=records, skipped=bad.skipped
    )


def _load(file: Path) -> tuple[np.ndarray, list[str]]:
    """Read the .mat file; return the flat annotation array and the class names in order."""
    if not file.is_file():
        raise DataError(
            f"{ANNOTATIONS_FILE} not found; the cars196 root holds it and car_ims/", file
        )
    try:
        mat = loadmat(file)
    except Exception as e:  # scipy raises ValueError, TypeError, ... on non-MATLAB files
        raise DataError(
            f"not a readable MATLAB .mat file ({type(e).__name__}: {e})", file
        ) from None
    missing_vars = [v for v in ("annotations", "class_names") if v not in mat]
    if missing_vars:
        raise DataError(f"missing variable(s) {missing_vars}", file)
    annotations = np.asarray(mat["annotations"]).reshape(-1)
    found = list(annotations.dtype.names or ())
    missing = [f for f in FIELDS if f not in found]
    if missing:
        raise DataError(f"annotations lack field(s) {missing}; fields found: {found}", file)
    names = [_scalar(n) for n in np.asarray(mat["class_names"]).reshape(-1)]
    bad_names = [i for i, n in enumerate(names, start=1) if not isinstance(n, str) or not n]
    if bad_names:
        raise DataError(f"class_names entries {bad_names[:5]} are not non-empty strings", file)
    return annotations, [n.strip() for n in names]


def _scalar(value: Any) -> Any:
    """Unwrap loadmat's 1-element arrays (possibly nested in object arrays) to a Python value."""
    while isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _integer(value: Any, what: str, file: Path) -> int:
    number = _scalar(value)
    if isinstance(number, float) and number.is_integer():
        number = int(number)  # MATLAB stores numbers as doubles unless told otherwise
    if not isinstance(number, int) or isinstance(number, bool):
        raise DataError(f"{what} is not an integer: {number!r}", file)
    return number

"""The Stanford Cars reader: a real cars_annos.mat written with scipy.io.savemat."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from atlantis.data.readers import read_dataset
from atlantis.errors import DataError

NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]
FIELDS = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")


def write_mat(root: Path, rows: list[dict], names: list[str] = NAMES, drop: tuple = ()) -> Path:
    """Write cars_annos.mat the way MATLAB stores it: a 1 x N struct, a 1 x C cell."""
    fields = [f for f in FIELDS if f not in drop]
    annotations = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            value = row[f]
            annotations[0, i][f] = value if isinstance(value, str) else np.array([[value]])
    class_names = np.empty((1, len(names)), dtype=object)
    class_names[0, :] = names
    file = root / "cars_annos.mat"
    savemat(file, {"annotations": annotations, "class_names": class_names})
    return file


def row(n: int, cls: int, test: int = 0, dtype=np.uint8) -> dict:
    box = {"bbox_x1": 1 + n, "bbox_y1": 2, "bbox_x2": 7, "bbox_y2": 6 + n}
    return {
        "relative_im_path": f"car_ims/{n:06d}.jpg",
        **{k: dtype(v) for k, v in box.items()},
        "class": dtype(cls),
        "test": dtype(test),
    }


@pytest.fixture
def cars(tmp_path: Path, make_image) -> Path:
    root = tmp_path / "cars"
    for n in range(1, 7):
        make_image(root / "car_ims" / f"{n:06d}.jpg", color=(40 * n, 0, 0))
    write_mat(root, [row(1, 2), row(2, 1, test=1), row(3, 3), row(4, 1), row(5, 2, 1), row(6, 3)])
    return root


def test_reads_records_classes_and_meta(cars: Path) -> None:
    ds = read_dataset("cars196", cars)
    assert ds.format == "cars196" and ds.root == cars
    assert ds.classes == NAMES  # class-index order, not first appearance
    assert [r.path for r in ds.records] == [f"car_ims/{n:06d}.jpg" for n in range(1, 7)]
    first, second = ds.records[:2]
    assert first.id == first.path and first.label == NAMES[1]
    assert first.meta == {"class_id": 2, "official_test": False, "bbox": [2, 2, 7, 7]}
    assert second.label == NAMES[0] and second.meta["official_test"] is True


def test_matlab_doubles_are_accepted(cars: Path) -> None:
    write_mat(cars, [row(n, n % 3 + 1, dtype=np.float64) for n in range(1, 7)])
    ds = read_dataset("cars196", cars)
    assert ds.records[0].meta["class_id"] == 2 and isinstance(ds.records[0].meta["bbox"][0], int)


def test_missing_mat_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cars_annos\.mat.*not found"):
        read_dataset("cars196", tmp_path)


def test_not_a_mat_file(cars: Path) -> None:
    (cars / "cars_annos.mat").write_text("definitely not MATLAB")
    with pytest.raises(DataError, match=r"cars_annos\.mat: not a readable MATLAB"):
        read_dataset("cars196", cars)


def test_missing_fields_are_named(cars: Path) -> None:
    write_mat(cars, [row(1, 1)], drop=("class", "bbox_y2"))
    with pytest.raises(DataError, match=r"lack field\(s\) \['bbox_y2', 'class'\]; fields found"):
        read_dataset("cars196", cars)


def test_class_out_of_range_names_annotation(cars: Path) -> None:
    write_mat(cars, [row(1, 1), row(2, 4)])
    file = cars / "cars_annos.mat"
    msg = rf"{re.escape(str(file))}: annotation 2 \(car_ims/000002.jpg\): class 4 is out of range 1..3"
    with pytest.raises(DataError, match=msg):
        read_dataset("cars196", cars)


def test_bad_paths_and_files(cars: Path) -> None:
    (cars / "car_ims" / "000002.jpg").write_text("text")
    rows = [row(1, 1), row(2, 2), row(3, 3), row(1, 1)]
    write_mat(cars, rows)
    with pytest.raises(DataError, match=r"000002\.jpg.*not a readable image"):
        read_dataset("cars196", cars)
    bad_path = row(4, 1) | {"relative_im_path": "../000004.jpg"}
    abs_path = row(5, 2) | {"relative_im_path": "/car_ims/000005.jpg"}
    missing = row(9, 3)
    write_mat(cars, [*rows, bad_path, abs_path, missing, row(6, 3)])
    ds = read_dataset("cars196", cars, skip_bad=True)
    assert [r.path for r in ds.records] == [
        "car_ims/000001.jpg",
        "car_ims/000003.jpg",
        "car_ims/000006.jpg",
    ]
    reasons = [s.reason for s in ds.skipped]
    assert "not a readable image" in reasons[0]
    assert "duplicate id 'car_ims/000001.jpg'" in reasons[1]
    assert "escapes the dataset root" in reasons[2] and "absolute" in reasons[3]
    assert "does not exist" in reasons[4]
    assert ds.classes == [NAMES[0], NAMES[2]]  # class 2's only images were bad


def test_empty_class_is_an_error(cars: Path) -> None:
    write_mat(cars, [row(1, 1), row(2, 3)])
    with pytest.raises(DataError, match=r"no images: \['Acura RL Sedan 2012'\]"):
        read_dataset("cars196", cars)


def test_root_may_name_the_mat_file(cars: Path) -> None:
    assert read_dataset("cars196", cars / "cars_annos.mat").root == cars
    with pytest.raises(DataError, match="is a file, but format 'cars196' reads a folder"):
        read_dataset("cars196", cars / "car_ims" / "000001.jpg")

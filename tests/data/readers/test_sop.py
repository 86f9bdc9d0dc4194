"""The Stanford Online Products reader: Ebay_train.txt / Ebay_test.txt, an official split."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atlantis.data.readers import read_dataset
from atlantis.errors import DataError

HEADER = "image_id class_id super_class_id path"
TRAIN = [
    "1 1 1 bicycle_final/111085122871_0.JPG",
    "2 1 1 bicycle_final/111085122871_1.JPG",
    "3 2 2 cabinet_final/222_0.JPG",
]
TEST = [
    "4 5 1 bicycle_final/555_0.JPG",
    "5 3 2 cabinet_final/333_0.JPG",
    "6 3 2 cabinet_final/333_1.JPG",
]


def write_split(root: Path, name: str, rows: list[str], header: str = HEADER) -> Path:
    file = root / name
    file.write_text("\n".join([header, *rows]) + "\n")
    return file


@pytest.fixture
def sop(tmp_path: Path, make_image) -> Path:
    root = tmp_path / "Stanford_Online_Products"
    for line in TRAIN + TEST:
        make_image(root / line.split()[3])
    write_split(root, "Ebay_train.txt", TRAIN)
    write_split(root, "Ebay_test.txt", TEST)
    return root


def test_reads_official_split(sop: Path) -> None:
    ds = read_dataset("sop", sop)
    assert ds.format == "sop" and ds.official_split is True
    assert ds.classes == ["1", "2", "3", "5"]  # class id order
    assert [r.id for r in ds.records] == [f"sop-{i}" for i in range(1, 7)]
    first, last = ds.records[0], ds.records[-1]
    assert first.path == "bicycle_final/111085122871_0.JPG" and first.label == "1"
    assert first.meta == {
        "class_id": 1,
        "super_class_id": 1,
        "super_class": "bicycle",
        "official_split": "train",
    }
    assert last.meta["official_split"] == "test" and last.label == "3"
    assert all(r.split == "unassigned" for r in ds.records)  # assign_splits decides


def test_missing_split_file(sop: Path) -> None:
    (sop / "Ebay_test.txt").unlink()
    with pytest.raises(DataError, match=r"missing: \['Ebay_test.txt'\]"):
        read_dataset("sop", sop)


def test_bad_header(sop: Path) -> None:
    file = write_split(sop, "Ebay_train.txt", TRAIN, header="id class path")
    with pytest.raises(DataError, match=rf"{re.escape(str(file))}:1: expected the header"):
        read_dataset("sop", sop)


def test_class_in_both_files_is_named(sop: Path) -> None:
    file = write_split(sop, "Ebay_test.txt", [*TEST, "7 2 2 cabinet_final/222_0.JPG"])
    with pytest.raises(DataError) as err:
        read_dataset("sop", sop)
    msg = str(err.value)
    assert msg.startswith(f"{file}:5: class 2 is in both Ebay_train.txt (line 4) and Ebay_test.txt")


def test_duplicate_image_id(sop: Path) -> None:
    write_split(sop, "Ebay_test.txt", [*TEST, "2 3 2 cabinet_final/333_1.JPG"])
    with pytest.raises(DataError, match=r"Ebay_test.txt:5: duplicate id 'sop-2' \(first used at"):
        read_dataset("sop", sop)


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("7 3 2 cabinet_final/missing.JPG", "does not exist"),
        ("7 3 2 ../outside.JPG", "escapes the dataset root"),
        ("7 3 2 /outside.JPG", "absolute"),
        ("7 three 2 cabinet_final/333_0.JPG", "integer ids"),
        ("7 3 2", "expected"),
    ],
)
def test_bad_rows_name_file_and_line(sop: Path, bad_row: str, message: str) -> None:
    file = write_split(sop, "Ebay_test.txt", [*TEST, bad_row])
    with pytest.raises(DataError, match=message) as err:
        read_dataset("sop", sop)
    assert str(err.value).startswith(f"{file}:5: ")


def test_skip_bad_keeps_going(sop: Path) -> None:
    (sop / "cabinet_final" / "222_0.JPG").write_text("not an image")
    write_split(sop, "Ebay_test.txt", [*TEST, "7 3 2 ../x.JPG", "8 9 9 nothing/here.JPG"])
    ds = read_dataset("sop", sop, skip_bad=True)
    assert [r.id for r in ds.records] == ["sop-1", "sop-2", "sop-4", "sop-5", "sop-6"]
    assert ds.classes == ["1", "3", "5"]  # class 2 had one (bad) image
    assert [s.source.rsplit("/", 1)[-1] for s in ds.skipped] == [
        "Ebay_train.txt:4",
        "Ebay_test.txt:5",
        "Ebay_test.txt:6",
    ]
    assert ds.skipped[0].path == "cabinet_final/222_0.JPG"


def test_root_may_name_a_split_file(sop: Path) -> None:
    assert read_dataset("sop", sop / "Ebay_test.txt").root == sop
    (sop / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt: dataset root is a file.*Ebay_train\.txt"):
        read_dataset("sop", sop / "notes.txt")
    with pytest.raises(DataError, match=r"does not exist.*point --root"):
        read_dataset("sop", sop / "missing")

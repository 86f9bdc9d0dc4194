"""The CUB-200-2011 reader: four index files keyed by image id, classes by class id."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlantis.data.readers import read_dataset
from atlantis.errors import DataError

CLASSES = {1: "001.Black_footed_Albatross", 2: "002.Laysan_Albatross", 3: "003.Sooty_Albatross"}


def build_cub(parent: Path, make_image, per_class: int = 2) -> Path:
    """Write a tiny CUB_200_2011/ with ``per_class`` images for each of three classes."""
    base = parent / "CUB_200_2011"
    images, labels, flags = [], [], []
    image_id = 0
    for class_id, name in CLASSES.items():
        for k in range(per_class):
            image_id += 1
            rel = f"{name}/{name.split('.')[1]}_{image_id:04d}.jpg"
            make_image(base / "images" / rel, color=(class_id * 60, k * 90, 10))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
            flags.append(f"{image_id} {k % 2}")
    # classes.txt out of order on purpose: the class order comes from the ids, not the lines
    classes = [f"{c} {CLASSES[c]}" for c in (3, 1, 2)]
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", flags),
        ("classes.txt", classes),
    ):
        (base / name).write_text("\n".join(lines) + "\n")
    return base


def edit(file: Path, line: int, text: str | None) -> None:
    """Replace (or with None, delete) 1-based ``line`` of ``file``."""
    lines = file.read_text().splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    file.write_text("\n".join(lines) + "\n")


@pytest.fixture
def cub(tmp_path: Path, make_image) -> Path:
    return build_cub(tmp_path, make_image)


def test_reads_records_classes_and_meta(cub: Path) -> None:
    ds = read_dataset("cub", cub.parent)  # the folder holding CUB_200_2011/
    assert ds.root == cub and ds.format == "cub"
    assert ds.classes == [CLASSES[1], CLASSES[2], CLASSES[3]]
    assert [r.id for r in ds.records] == [f"cub-{i}" for i in range(1, 7)]
    first = ds.records[0]
    assert first.path == "images/001.Black_footed_Albatross/Black_footed_Albatross_0001.jpg"
    assert first.label == CLASSES[1]
    assert first.meta == {"class_id": 1, "official_train": False}
    assert ds.records[1].meta["official_train"] is True
    assert ds.official_split is False  # the official flag is an image split, not zero-shot
    assert read_dataset("cub", cub).classes == ds.classes  # the folder itself works too


def test_not_a_cub_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a CUB-200-2011 folder"):
        read_dataset("cub", tmp_path)


def test_missing_index_file_is_named(cub: Path) -> None:
    (cub / "train_test_split.txt").unlink()
    with pytest.raises(DataError, match=r"missing: \['train_test_split.txt'\]"):
        read_dataset("cub", cub)


def test_bad_line_format_names_file_and_line(cub: Path) -> None:
    edit(cub / "images.txt", 3, "three images/x.jpg")
    with pytest.raises(DataError, match=rf"{cub / 'images.txt'}:3: expected '<id> <value>'"):
        read_dataset("cub", cub)


def test_bad_classes_line_always_stops(cub: Path) -> None:
    edit(cub / "classes.txt", 2, "oops")
    with pytest.raises(DataError, match=rf"{cub / 'classes.txt'}:2: expected '<id> <class name>'"):
        read_dataset("cub", cub, skip_bad=True)


def test_image_missing_from_labels_file(cub: Path) -> None:
    edit(cub / "image_class_labels.txt", 4, None)
    with pytest.raises(DataError) as err:
        read_dataset("cub", cub)
    msg = str(err.value)
    assert msg.startswith(str(cub / "image_class_labels.txt"))
    assert "image id 4 (images.txt line 4) has no line here" in msg


def test_id_in_labels_but_not_in_images(cub: Path) -> None:
    with open(cub / "image_class_labels.txt", "a") as fh:
        fh.write("99 1\n")
    with pytest.raises(DataError, match=r"image_class_labels.txt:7: image id 99 is not listed"):
        read_dataset("cub", cub)


def test_class_id_not_in_classes_txt(cub: Path) -> None:
    edit(cub / "image_class_labels.txt", 2, "2 17")
    with pytest.raises(DataError, match=r"image_class_labels.txt:2: class id 17 .* not in classes"):
        read_dataset("cub", cub)


def test_duplicate_image_id(cub: Path) -> None:
    edit(cub / "images.txt", 5, "1 001.Black_footed_Albatross/Black_footed_Albatross_0001.jpg")
    with pytest.raises(DataError, match=r"images.txt:5: image id 1 is listed twice"):
        read_dataset("cub", cub)


def test_missing_and_non_image_files(cub: Path) -> None:
    first = sorted((cub / "images").rglob("*.jpg"))
    first[0].unlink()
    with pytest.raises(DataError, match=r"images.txt:1: image file .* does not exist"):
        read_dataset("cub", cub)
    first[0].write_text("a text file named .jpg")
    with pytest.raises(DataError, match=r"images.txt:1: .* not a readable image"):
        read_dataset("cub", cub)


@pytest.mark.parametrize("path", ["../../escape.jpg", "/abs/escape.jpg"])
def test_path_escaping_root(cub: Path, path: str) -> None:
    edit(cub / "images.txt", 2, f"2 {path}")
    with pytest.raises(DataError, match=r"images.txt:2: path .* (escapes|absolute)"):
        read_dataset("cub", cub)


def test_empty_class_is_an_error(cub: Path) -> None:
    with open(cub / "classes.txt", "a") as fh:
        fh.write("4 004.Groove_billed_Ani\n")
    with pytest.raises(DataError, match=r"no images: \['004.Groove_billed_Ani'\]"):
        read_dataset("cub", cub)


def test_skip_bad_keeps_going_and_drops_emptied_class(cub: Path) -> None:
    edit(cub / "image_class_labels.txt", 2, "2 17")  # image 2: unknown class
    edit(cub / "images.txt", 3, "3 ../escape.jpg")  # image 3: escapes
    edit(cub / "images.txt", 4, "4 " + "002.Laysan_Albatross/missing.jpg")  # image 4: missing
    ds = read_dataset("cub", cub, skip_bad=True)
    assert [r.id for r in ds.records] == ["cub-1", "cub-5", "cub-6"]
    assert ds.classes == [CLASSES[1], CLASSES[3]]  # class 2 lost both images
    sources = [s.source for s in ds.skipped]
    assert sources[:3] == [
        f"{cub / 'image_class_labels.txt'}:2",
        f"{cub / 'images.txt'}:3",
        f"{cub / 'images.txt'}:4",
    ]
    assert "002.Laysan_Albatross" in ds.skipped[3].reason


def test_root_may_name_an_index_file(cub: Path) -> None:
    assert read_dataset("cub", cub / "images.txt").root == cub  # its folder is the root
    with pytest.raises(
        DataError, match=r"is a file, but format 'cub' reads a folder.*CUB_200_2011/"
    ):
        read_dataset("cub", cub / "images" / CLASSES[1] / "Black_footed_Albatross_0001.jpg")


def test_index_file_not_in_utf8_names_the_line(cub: Path) -> None:
    (cub / "classes.txt").write_bytes(b"1 001.Black\n2 002.Caf\xe9\n3 003.Sooty\n")
    with pytest.raises(DataError, match=r"classes\.txt:2: not UTF-8 text \(byte 0xe9"):
        read_dataset("cub", cub)

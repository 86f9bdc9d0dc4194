"""The imagefolder reader: root/<class>/<image>, sorted classes, strict about stray files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlantis.data.readers import read_dataset
from atlantis.errors import DataError
from atlantis.registry import UnknownNameError


@pytest.fixture
def tree(tmp_path: Path, make_image) -> Path:
    root = tmp_path / "birds"
    make_image(root / "wren" / "b.png")
    make_image(root / "wren" / "a.jpg")
    make_image(root / "albatross" / "x.JPEG")
    make_image(root / "albatross" / "more" / "y.webp")
    (root / "albatross" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / ".hidden_class").mkdir()
    (root / "README.txt").write_text("not part of the layout")
    return root


def test_reads_classes_in_sorted_folder_order(tree: Path) -> None:
    ds = read_dataset("imagefolder", tree)
    assert ds.format == "imagefolder"
    assert ds.classes == ["albatross", "wren"]
    assert [(r.id, r.label) for r in ds.records] == [
        ("albatross/more/y.webp", "albatross"),
        ("albatross/x.JPEG", "albatross"),
        ("wren/a.jpg", "wren"),
        ("wren/b.png", "wren"),
    ]
    assert all(r.id == r.path and r.split == "unassigned" for r in ds.records)
    assert ds.skipped == []


def test_non_image_file_is_an_error_naming_it(tree: Path) -> None:
    (tree / "wren" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"wren/notes\.txt.*not an image"):
        read_dataset("imagefolder", tree)


def test_text_renamed_jpg_is_not_a_readable_image(tree: Path) -> None:
    (tree / "wren" / "fake.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(DataError, match=r"fake\.jpg.*not a readable image"):
        read_dataset("imagefolder", tree)
    # without verification the file is taken on trust (fast re-reads)
    ds = read_dataset("imagefolder", tree, verify_images=False)
    assert "wren/fake.jpg" in {r.id for r in ds.records}


def test_truncated_png_is_not_a_readable_image(tree: Path) -> None:
    png = tree / "wren" / "b.png"
    png.write_bytes(png.read_bytes()[:-20])
    with pytest.raises(DataError, match="not a readable image"):
        read_dataset("imagefolder", tree)


def test_skip_bad_lists_bad_files_and_keeps_going(tree: Path) -> None:
    (tree / "wren" / "notes.txt").write_text("hello")
    (tree / "wren" / "fake.jpg").write_text("text")
    (tree / "stray.png").write_bytes(b"")
    ds = read_dataset("imagefolder", tree, skip_bad=True)
    assert len(ds.records) == 4
    assert sorted(s.path for s in ds.skipped) == ["stray.png", "wren/fake.jpg", "wren/notes.txt"]
    notes = next(s for s in ds.skipped if s.path == "wren/notes.txt")
    assert notes.source.endswith("notes.txt") and "not an image" in notes.reason


def test_image_outside_any_class_folder_is_an_error(tree: Path, make_image) -> None:
    make_image(tree / "loose.png")
    with pytest.raises(DataError, match=r"loose\.png.*not inside a class folder"):
        read_dataset("imagefolder", tree)


def test_empty_class_is_an_error_or_dropped_with_skip_bad(tree: Path) -> None:
    (tree / "zebra_finch").mkdir()
    with pytest.raises(DataError, match=r"no images: \['zebra_finch'\]") as err:
        read_dataset("imagefolder", tree)
    assert str(tree) in str(err.value)
    ds = read_dataset("imagefolder", tree, skip_bad=True)
    assert ds.classes == ["albatross", "wren"]
    assert any("zebra_finch" in s.reason for s in ds.skipped)


def test_class_emptied_by_skipped_images_is_dropped(tree: Path) -> None:
    (tree / "crow").mkdir()
    (tree / "crow" / "broken.png").write_text("nope")
    ds = read_dataset("imagefolder", tree, skip_bad=True)
    assert ds.classes == ["albatross", "wren"]
    assert {s.path for s in ds.skipped} == {"crow/broken.png", None}


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_symlink_resolving_outside_root_is_rejected(tree: Path, tmp_path: Path, make_image) -> None:
    secret = make_image(tmp_path / "elsewhere" / "secret.png")
    (tree / "wren" / "link.png").symlink_to(secret)
    with pytest.raises(DataError, match=r"link\.png.*outside the dataset root"):
        read_dataset("imagefolder", tree)


def test_root_must_exist_and_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_dataset("imagefolder", tmp_path / "nope")
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(DataError, match="is a file, but format 'imagefolder' reads a folder"):
        read_dataset("imagefolder", file)


def test_unknown_format_lists_valid_names(tree: Path) -> None:
    with pytest.raises(UnknownNameError) as err:
        read_dataset("imagefoldr", tree)
    for name in ("cars196", "cub", "imagefolder", "manifest", "sop"):
        assert name in str(err.value)


def test_no_images_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images found"):
        read_dataset("imagefolder", tmp_path)

"""The manifest reader: CSV / JSONL rows of path,label[,caption,domain,id,split]."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlantis.data.readers import read_dataset
from atlantis.errors import DataError


@pytest.fixture
def images(tmp_path: Path, make_image) -> Path:
    root = tmp_path / "data"
    for name in ("a.png", "b.jpg", "c.png", "d.png"):
        make_image(root / "img" / name)
    return root


def write_csv(root: Path, lines: list[str], name: str = "manifest.csv") -> Path:
    file = root / name
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return file


def write_jsonl(root: Path, rows: list[dict | str], name: str = "manifest.jsonl") -> Path:
    file = root / name
    text = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    file.write_text("\n".join(text) + "\n", encoding="utf-8")
    return file


def test_csv_with_all_columns(images: Path) -> None:
    write_csv(
        images,
        [
            "path,label,caption,domain,id,split,photographer",
            "img/b.jpg,dog,a dog on grass,photo;outdoor,,train,ann",
            "img/a.png,cat,,sketch,cat-1,test,",
            "img/c.png,dog,,,,,",
        ],
    )
    ds = read_dataset("manifest", images)
    assert ds.root == images
    assert ds.classes == ["dog", "cat"]  # order of first appearance
    b, a, c = ds.records
    assert (b.id, b.path, b.label) == ("img/b.jpg", "img/b.jpg", "dog")  # id defaults to path
    assert b.captions == ["a dog on grass"] and b.domains == ["photo", "outdoor"]
    assert b.meta == {"manifest_split": "train", "photographer": "ann"}
    assert b.split == "unassigned"  # the manifest's split is kept in meta only
    assert (a.id, a.captions, a.domains) == ("cat-1", [], ["sketch"])
    assert c.meta == {}


def test_jsonl_accepts_lists_and_numeric_labels(images: Path) -> None:
    write_jsonl(
        images,
        [
            {"path": "img/a.png", "label": 7, "captions": ["one", "two"], "domains": ["x", "y"]},
            {"path": "img/b.jpg", "label": "7", "caption": "three", "id": None},
            "",
            {"path": "img/c.png", "label": 3, "caption": "c", "captions": ["d"]},
        ],
    )
    ds = read_dataset("manifest", images)
    assert ds.classes == ["7", "3"]
    assert ds.records[0].captions == ["one", "two"] and ds.records[0].domains == ["x", "y"]
    assert ds.records[1].id == "img/b.jpg"
    assert ds.records[2].captions == ["c", "d"]


def test_root_may_be_the_manifest_file(images: Path) -> None:
    file = write_csv(images, ["path,label", "img/a.png,cat"], name="my_list.csv")
    ds = read_dataset("manifest", file)
    assert ds.root == images and [r.path for r in ds.records] == ["img/a.png"]


def test_root_naming_a_file_that_is_no_manifest(images: Path) -> None:
    with pytest.raises(DataError, match=r"a\.png: is not a manifest.*the manifest file, or"):
        read_dataset("manifest", images / "img" / "a.png")


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_manifest_not_in_utf8_names_the_line(images: Path, name: str) -> None:
    rows = {"manifest.csv": b"path,label\nimg/a.png,cat\nimg/b.jpg,caf\xe9\n",
            "manifest.jsonl": b'{"path": "img/a.png", "label": "cat"}\n{"path": "img/b.jpg", '
                              b'"label": "caf\xe9"}\n'}  # fmt: skip
    (images / name).write_bytes(rows[name])
    with pytest.raises(DataError, match=rf"{name}:\d: not UTF-8 text.*save the file as UTF-8"):
        read_dataset("manifest", images, skip_bad=True)  # the whole file is unreadable


def test_manifest_names_are_tried_in_order(images: Path) -> None:
    write_csv(images, ["path,label", "img/a.png,from_metadata"], name="metadata.csv")
    assert read_dataset("manifest", images).classes == ["from_metadata"]
    write_jsonl(images, [{"path": "img/a.png", "label": "from_manifest"}])
    assert read_dataset("manifest", images).classes == ["from_manifest"]


def test_no_manifest_lists_the_names_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"manifest\.csv, manifest\.jsonl, metadata\.csv"):
        read_dataset("manifest", tmp_path)


def test_missing_columns_names_file_missing_and_found(images: Path) -> None:
    file = write_csv(images, ["path,caption", "img/a.png,hi"])
    with pytest.raises(DataError) as err:
        read_dataset("manifest", images)
    msg = str(err.value)
    assert str(file) in msg and "['label']" in msg and "['path', 'caption']" in msg


def test_jsonl_line_missing_a_column_names_the_line(images: Path) -> None:
    file = write_jsonl(images, [{"path": "img/a.png", "label": "a"}, {"path": "img/b.jpg"}])
    with pytest.raises(DataError, match=rf"{file}:2: missing required column\(s\) \['label'\]"):
        read_dataset("manifest", images)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("img/missing.png,cat", "does not exist"),
        ("img/notes.png,cat", "not a readable image"),
        ("../outside.png,cat", "escapes the dataset root"),
        ("/etc/passwd.png,cat", "absolute"),
        ("img/c.png,cat,,,,holdout", "split 'holdout'"),
        ("img/c.png,,,,,", "column 'label' is empty"),
        ("img/c.png,cat,,,,,extra", "more cells"),
    ],
)
def test_bad_rows_name_file_and_line(images: Path, row: str, message: str) -> None:
    (images / "img" / "notes.png").write_text("just text")
    file = write_csv(images, ["path,label,caption,domain,id,split", "img/a.png,cat", row])
    with pytest.raises(DataError, match=message) as err:
        read_dataset("manifest", images)
    assert str(err.value).startswith(f"{file}:3: ")


def test_duplicate_ids_point_at_both_lines(images: Path) -> None:
    file = write_csv(
        images, ["path,label,id", "img/a.png,cat,x", "img/b.jpg,cat,y", "img/c.png,dog,x"]
    )
    with pytest.raises(DataError, match=rf"{file}:4: duplicate id 'x' \(first used at {file}:2\)"):
        read_dataset("manifest", images)


def test_invalid_json_names_the_line(images: Path) -> None:
    file = write_jsonl(images, [{"path": "img/a.png", "label": "a"}, "{not json"])
    with pytest.raises(DataError, match=rf"{file}:2: not valid JSON"):
        read_dataset("manifest", images)


def test_skip_bad_keeps_good_rows_and_lists_the_rest(images: Path) -> None:
    (images / "img" / "notes.png").write_text("just text")
    write_jsonl(
        images,
        [
            {"path": "img/a.png", "label": "cat"},
            {"path": "img/missing.png", "label": "cat"},
            {"path": "../x.png", "label": "cat"},
            "[1, 2]",
            {"path": "img/a.png", "label": "cat"},  # duplicate id (the path)
            {"path": "img/notes.png", "label": "dog"},  # dog's only image: class dropped
            {"path": "img/b.jpg", "label": "cow", "captions": "ok as a single string"},
            {"path": "img/c.png", "label": "cow", "domains": [1]},
        ],
    )
    ds = read_dataset("manifest", images, skip_bad=True)
    assert [r.path for r in ds.records] == ["img/a.png", "img/b.jpg"]
    assert ds.classes == ["cat", "cow"]  # 'dog' never had a good image, so is never a class
    assert [s.source.rsplit(":", 1)[-1] for s in ds.skipped] == ["2", "3", "4", "5", "6", "8"]
    assert ds.skipped[2].path is None and "JSON object" in ds.skipped[2].reason
    assert "duplicate id 'img/a.png'" in ds.skipped[3].reason
    assert "'domains' must be a string or a list of strings" in ds.skipped[5].reason

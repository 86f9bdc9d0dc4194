"""The ``hf`` format: a ``datasets`` save_to_disk folder, and Parquet files written by pyarrow alone.

Every dataset is built here, tiny: a DatasetDict with Image + ClassLabel features, the Hub's
Parquet layout (split-named files, ClassLabel names in the schema's ``huggingface``
metadata), a path-string image column; then bad input (missing columns, a wrong label type,
bytes that are no image) and the CLI's ``ingest --format hf``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.data.readers import image_store as store_module
from atlantis.data.readers import read_dataset
from atlantis.data.readers.hf_tables import split_of
from atlantis.data.records import read_records
from atlantis.data.splits import assign_splits
from atlantis.errors import DataError
from tests.data.conftest import write_image

NAMES = ["wren", "crow", "gull", "owl"]


def image_bytes(color: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, fmt)
    return buf.getvalue()


def hf_metadata(features: dict) -> dict[bytes, bytes]:
    """The schema metadata ``datasets`` writes into Parquet files."""
    return {b"huggingface": json.dumps({"info": {"features": features}}).encode()}


IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
FEATURES = {"image": {"_type": "Image"}, "label": {"names": NAMES, "_type": "ClassLabel"}}


def write_split(path: Path, labels: list[int], *, shift: int = 0, fmt: str = "PNG") -> None:
    """One Hub-style Parquet split: Image structs and int labels with ClassLabel names."""
    images = [
        {"bytes": image_bytes((40 * i + shift, 60 * y, 9), fmt), "path": f"{i}.png"}
        for i, y in enumerate(labels)
    ]
    schema = pa.schema(
        [("image", IMAGE_TYPE), ("label", pa.int64())], metadata=hf_metadata(FEATURES)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"image": images, "label": labels}, schema=schema), path)


def hub_layout(root: Path) -> Path:
    """``data/train-*.parquet`` and ``data/test-*.parquet``, the same classes in both."""
    write_split(root / "data" / "train-00000-of-00001.parquet", [0, 1, 2, 3, 0, 1, 2, 3])
    write_split(root / "data" / "test-00000-of-00001.parquet", [0, 1, 2, 3], shift=5, fmt="JPEG")
    return root


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ datasets save_to_disk


def test_save_to_disk_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=NAMES),
        "caption": datasets.Value("string"),
    })  # fmt: skip

    def part(labels: list[int]) -> object:
        rows = {
            "image": [
                {"bytes": image_bytes((50 * y, 20 * i, 7)), "path": None}
                for i, y in enumerate(labels)
            ],
            "label": labels,
            "caption": [f"a photo of a {NAMES[y]}" for y in labels],
        }
        return datasets.Dataset.from_dict(rows, features=features)

    root = tmp_path / "birds"
    # Disjoint classes: train wren/crow, test gull/owl, a zero-shot split of its own.
    datasets.DatasetDict(train=part([1, 0, 1, 0]), test=part([3, 2, 3])).save_to_disk(str(root))

    ds = read_dataset("hf", root)
    assert ds.classes == NAMES  # ClassLabel order, not order of appearance
    assert [r.label for r in ds.records] == ["crow", "wren", "crow", "wren", "owl", "gull", "owl"]
    assert ds.records[0].captions == ["a photo of a crow"]
    assert ds.official_split
    assert {r.meta["official_split"] for r in ds.records if r.label in ("gull", "owl")} == {"test"}
    assert {r.meta["hf_split"] for r in ds.records} == {"train", "test"}
    for rec in ds.records:
        assert rec.path.startswith(".atlantis-images/") and rec.path.endswith(".png")
        with Image.open(ds.root / rec.path) as img:
            img.load()
    split = {r.label: r.split for r in assign_splits(ds, "zsl", val_fraction=0.0, seed=0)}
    assert split == {"wren": "train", "crow": "train", "gull": "test", "owl": "test"}

    before = snapshot(root / ".atlantis-images")
    assert len(before) == 7
    again = read_dataset("hf", root)
    assert snapshot(root / ".atlantis-images") == before  # nothing rewritten
    assert [r.path for r in again.records] == [r.path for r in ds.records]


# ---------------------------------------------------------------------- Parquet, pyarrow only


def test_hub_parquet_layout_resolves_classlabel_names_and_splits(tmp_path: Path) -> None:
    ds = read_dataset("hf", hub_layout(tmp_path / "hub"))
    assert ds.classes == NAMES
    train = [r for r in ds.records if r.meta["hf_split"] == "train"]
    test = [r for r in ds.records if r.meta["hf_split"] == "test"]
    assert [r.label for r in test] == NAMES and len(train) == 8
    assert not ds.official_split  # same classes on both sides: an image split, ATLANTIS splits
    assert {Path(r.path).suffix for r in test} == {".jpg"}
    assert {Path(r.path).suffix for r in train} == {".png"}
    assert test[0].id == "hf-test-0" and test[0].meta["hf_path"] == "0.png"
    before = snapshot(ds.root / ".atlantis-images")
    read_dataset("hf", ds.root / "data" / "test-00000-of-00001.parquet")  # a file as root
    assert len(read_dataset("hf", ds.root).records) == 12
    assert snapshot(ds.root / ".atlantis-images") == before


def test_path_column_and_string_labels(tmp_path: Path) -> None:
    root = tmp_path / "local"
    paths = []
    for c, name in enumerate(("fox", "cat")):
        for i in range(2):
            write_image(root / "imgs" / f"{name}{i}.png", color=(90 * c, 30 * i, 5))
            paths.append(f"imgs/{name}{i}.png")
    table = pa.table({
        "img": paths,  # an alternative name, found because it is the only one
        "class": ["fox", "fox", "cat", "cat"],
        "captions": [["a fox", "red"], ["a fox"], [], ["a cat"]],
        "domain": ["photo;wild", "photo", "sketch", "sketch"],
    })  # fmt: skip
    pq.write_table(table, root / "meta.parquet")
    ds = read_dataset("hf", root)
    assert ds.classes == ["fox", "cat"]
    assert [r.path for r in ds.records] == paths
    assert ds.records[0].captions == ["a fox", "red"]
    assert ds.records[0].domains == ["photo", "wild"]
    assert not (root / ".atlantis-images").exists()  # nothing to extract
    assert ds.records[0].meta["hf_split"] is None


def test_options_pick_columns_and_splits(tmp_path: Path) -> None:
    root = hub_layout(tmp_path / "hub")
    only_test = read_dataset("hf", root, options={"split": "test"})
    assert {r.meta["hf_split"] for r in only_test.records} == {"test"}
    with pytest.raises(DataError, match=r"split\(s\) \['dev'\].*\['test', 'train'\]"):
        read_dataset("hf", root, options={"split": "dev"})
    with pytest.raises(DataError, match=r"no column 'fine' \(set by data.hf.label_column\)"):
        read_dataset("hf", root, options={"label_column": "fine"})


def test_read_only_root_extracts_to_the_cache(tmp_path: Path, monkeypatch) -> None:
    root = hub_layout(tmp_path / "hub")
    monkeypatch.setenv("ATLANTIS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(store_module.os, "access", lambda *a: False)
    ds = read_dataset("hf", root, options={"split": "test"})
    assert ds.root.is_relative_to(tmp_path / "home" / "hf-images")
    assert all((ds.root / r.path).is_file() for r in ds.records)


# ------------------------------------------------------------------------------ bad input


def test_missing_columns_list_what_is_there(tmp_path: Path) -> None:
    pq.write_table(pa.table({"picture": [b"x"], "label": [0]}), tmp_path / "x.parquet")
    with pytest.raises(DataError) as err:
        read_dataset("hf", tmp_path / "x.parquet")
    msg = str(err.value)
    assert "x.parquet" in msg and "['picture', 'label']" in msg
    assert "data.hf.image_column" in msg


def test_ambiguous_alternatives_ask_for_the_option(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"img": ["a.png"], "labels": [0], "class": ["x"]}), tmp_path / "t.parquet"
    )
    with pytest.raises(DataError, match=r"could be the label: \['labels', 'class'\].*label_column"):
        read_dataset("hf", tmp_path)


def test_wrong_label_type(tmp_path: Path) -> None:
    table = pa.table({"image": [image_bytes((1, 2, 3))], "label": [0.5]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"label column 'label' has type double.*label_column"):
        read_dataset("hf", tmp_path)


def test_undecodable_bytes_name_the_row_and_skip(tmp_path: Path) -> None:
    good = [image_bytes((10 * i, 0, 0)) for i in range(3)]
    table = pa.table({"image": [good[0], b"not an image", good[1], good[2]],
                      "label": ["a", "a", "b", "b"]})  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet row 1: image bytes are not a readable image"):
        read_dataset("hf", tmp_path)
    ds = read_dataset("hf", tmp_path, skip_bad=True)
    assert [r.id for r in ds.records] == ["hf-0", "hf-2", "hf-3"]
    assert ds.skipped[0].source.endswith("t.parquet row 1")


def test_split_names_from_hub_paths() -> None:
    assert split_of(Path("data/train-00000-of-00004.parquet")) == "train"
    assert split_of(Path("validation-00001-of-00002.parquet")) == "validation"
    assert split_of(Path("test.parquet")) == "test"
    assert split_of(Path("default/partial-train/0000.parquet")) == "train"
    assert split_of(Path("data/0000.parquet")) is None


# ------------------------------------------------------------------------------------ CLI


def test_cli_ingest(tmp_path: Path) -> None:
    root = hub_layout(tmp_path / "hub")
    run = tmp_path / "run"
    args = ["ingest", "--format", "hf", "--root", str(root), "--out", str(run), "--split", "fsl",
            "--set", "data.hf.split=train"]  # fmt: skip
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    written = (run / "ingest" / "records.jsonl").stat().st_mtime_ns
    assert CliRunner().invoke(app, args, catch_exceptions=False).exit_code == 0
    # The extracted images are not an input: the second ingest is up to date.
    assert (run / "ingest" / "records.jsonl").stat().st_mtime_ns == written
    records = read_records(run / "ingest" / "records.jsonl")
    assert len(records) == 8 and {r.label for r in records} == set(NAMES)
    assert {r.split for r in records} >= {"train", "test"}
    desc = json.loads((run / "ingest" / "dataset.json").read_text())
    assert desc["format"] == "hf" and desc["classes"] == NAMES
    assert all((Path(desc["root"]) / r.path).is_file() for r in records)


def test_cli_ingest_names_missing_columns(tmp_path: Path) -> None:
    pq.write_table(pa.table({"picture": [b"x"], "label": [0]}), tmp_path / "x.parquet")
    args = [
        "ingest",
        "-f",
        "hf",
        "--root",
        str(tmp_path / "x.parquet"),
        "--out",
        str(tmp_path / "r"),
    ]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 2
    assert "columns found: ['picture', 'label']" in " ".join(res.output.split())


def test_columns_found_by_their_feature_type(tmp_path: Path) -> None:
    features = {"photo": {"_type": "Image"}, "species": {"names": NAMES, "_type": "ClassLabel"}}
    schema = pa.schema(
        [("photo", IMAGE_TYPE), ("species", pa.int64()), ("kind", pa.int64())],
        metadata=hf_metadata(features),
    )
    images = [{"bytes": image_bytes((9, 9, 9 * i)), "path": None} for i in range(2)]
    table = pa.table({"photo": images, "species": [3, 2], "kind": [0, 0]}, schema=schema)
    pq.write_table(table, tmp_path / "t.parquet")
    assert [r.label for r in read_dataset("hf", tmp_path).records] == ["owl", "gull"]

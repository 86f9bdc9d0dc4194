"""The pool truth file: both formats, and every bad row named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlantis.data.emoji import write_pool_truth
from atlantis.data.truth import TruthEntry, load_truth, missing_truth, unknown_classes
from atlantis.errors import DataError


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_and_csv_read_the_same(tmp_path: Path) -> None:
    a = jsonl(tmp_path / "t.jsonl", [{"file": "g/a.png", "class": "cat", "domain": "g"},
                                     {"file": "t/b.png", "class": "dog"}])  # fmt: skip
    b = tmp_path / "t.csv"
    b.write_text("file,class,domain\ng/a.png,cat,g\nt/b.png,dog,\n")
    want = {"g/a.png": TruthEntry("cat", "g"), "t/b.png": TruthEntry("dog", None)}
    assert load_truth(a) == want == load_truth(b)


@pytest.mark.parametrize(("rows", "words"), [
    (['{"file": "a.png", "class": "cat"}', "{not json"], ":2: not valid JSON"),
    ([{"file": "a.png"}], ":1: 'class' is missing or empty"),
    ([{"class": "cat"}], ":1: 'file' is missing"),
    ([{"file": "a.png", "class": "  "}], "'class' is missing or empty"),
    ([{"file": "a.png", "class": "cat"}, {"file": "a.png", "class": "dog"}], ":2: file 'a.png' appears twice"),
    ([{"file": "../a.png", "class": "cat"}], "relative to the pool folder"),
    ([{"file": "/x/a.png", "class": "cat"}], "relative to the pool folder"),
    ([{"file": "a.png", "class": 3}], "'class' is 3, not a string"),
    (["[1, 2]"], ":1: a row is list"),
    ([], "has no rows"),
])  # fmt: skip
def test_bad_rows_are_named(tmp_path: Path, rows: list, words: str) -> None:
    path = jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(DataError, match=words) as e:
        load_truth(path)
    assert str(path) in str(e.value)


def test_csv_without_the_columns_lists_the_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("path,label\na.png,cat\n")
    with pytest.raises(
        DataError, match=r"\['label', 'path'\]; it needs the columns file and class"
    ):
        load_truth(path)


def test_a_missing_truth_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*loop\.pool_truth"):
        load_truth(tmp_path / "nope.jsonl")


def test_rows_naming_files_outside_the_pool_are_listed(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    (pool / "g").mkdir(parents=True)
    (pool / "g" / "a.png").write_bytes(b"x")
    path = jsonl(tmp_path / "t.jsonl", [{"file": "g/a.png", "class": "cat"},
                                        {"file": "g/gone.png", "class": "cat"},
                                        {"file": "old/b.png", "class": "dog"}])  # fmt: skip
    with pytest.raises(DataError, match="2 of its 3 rows name files that are not in the pool") as e:
        load_truth(path, pool)
    assert "g/gone.png, old/b.png" in str(e.value)
    assert load_truth(jsonl(tmp_path / "ok.jsonl", [{"file": "g/a.png", "class": "c"}]), pool)


def test_missing_and_unknown() -> None:
    truth = {"a.png": TruthEntry("cat"), "b.png": TruthEntry("owl")}
    assert missing_truth(truth, ["a.png", "c.png", "c.png", "b2.png"]) == ["b2.png", "c.png"]
    assert unknown_classes(truth, ["cat", "dog"]) == ["owl"]


def test_emoji_pool_truth_is_the_subcategory_and_vendor(tmp_path: Path) -> None:
    rows = [{"file": "google/1f44b-1f3fb.png", "caption": "waving hand: light skin tone emoji",
             "subcategory": "hand-fingers-open"},
            {"file": "twitter/1f1e6.png", "caption": "flag emoji", "subcategory": "flag"}]  # fmt: skip
    jsonl(tmp_path / "pool.jsonl", rows)
    assert write_pool_truth(tmp_path, tmp_path / "truth.jsonl") == 2
    truth = load_truth(tmp_path / "truth.jsonl")
    assert truth == {"google/1f44b-1f3fb.png": TruthEntry("hand-fingers-open", "google"),
                     "twitter/1f1e6.png": TruthEntry("flag", "twitter")}  # fmt: skip


def test_truth_classes_named_unlike_the_dataset_are_refused(tmp_path: Path) -> None:
    from atlantis.data.truth import TruthEntry, check_truth_classes

    path = tmp_path / "truth.jsonl"
    classes = ["animal-mammal", "food-fruit"]
    ok = {"a.png": TruthEntry("animal-mammal"), "b.png": TruthEntry("country-flag")}
    note = check_truth_classes(ok, classes, path)
    assert note is not None and "1 image(s) of 1 class(es)" in note and "country-flag" in note
    assert check_truth_classes({"a.png": TruthEntry("food-fruit")}, classes, path) is None
    renamed = {"a.png": TruthEntry("Animal Mammal"), "b.png": TruthEntry("food-fruit")}
    with pytest.raises(DataError, match="'Animal Mammal' \\(the dataset's 'animal-mammal'\\)"):
        check_truth_classes(renamed, classes, path)
    other = {"a.png": TruthEntry("cat"), "b.png": TruthEntry("dog")}
    with pytest.raises(DataError, match="none of the truth file's 2 class") as err:
        check_truth_classes(other, classes, path)
    assert str(path) in str(err.value) and "animal-mammal" in str(err.value)

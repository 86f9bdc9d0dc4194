"""Split rules: zero-shot by class, few-shot by image, val always carved from train."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from atlantis.data.dataset import Dataset
from atlantis.data.records import ImageRecord
from atlantis.data.splits import assign_splits, split_summary
from atlantis.errors import DataError


def make_dataset(
    n_classes: int, per_class: int | list[int] = 4, official: list[str] | None = None
) -> Dataset:
    """Records without image files: the split rules only look at ids, labels and meta."""
    classes = [f"{c:03d}.class" for c in range(1, n_classes + 1)]
    sizes = per_class if isinstance(per_class, list) else [per_class] * n_classes
    records = [
        ImageRecord(
            id=f"img-{c}-{k}",
            path=f"{name}/{k}.jpg",
            label=name,
            meta={"official_split": official[c]} if official else {},
        )
        for c, (name, size) in enumerate(zip(classes, sizes, strict=True))
        for k in range(size)
    ]
    return Dataset(
        format="test",
        root=Path("/data"),
        classes=classes,
        records=records,
        official_split=official is not None,
    )


def classes_in(records: list[ImageRecord], split: str) -> set[str]:
    return {r.label for r in records if r.split == split}


def ids_in(records: list[ImageRecord], split: str) -> set[str]:
    return {r.id for r in records if r.split == split}


def test_zsl_cub_like_first_100_classes_train_rest_test() -> None:
    ds = make_dataset(200, per_class=2)
    out = assign_splits(ds, "zsl", val_fraction=0.1, seed=0)
    first, second = set(ds.classes[:100]), set(ds.classes[100:])
    assert classes_in(out, "test") == second
    assert classes_in(out, "train") | classes_in(out, "val") == first
    assert len(classes_in(out, "val")) == 10
    assert classes_in(out, "val").isdisjoint(classes_in(out, "train"))  # unseen val classes
    assert split_summary(out) == {
        "train": {"images": 180, "classes": 90},
        "val": {"images": 20, "classes": 10},
        "test": {"images": 200, "classes": 100},
    }


def test_zsl_cars_like_98_98_and_odd_counts() -> None:
    out = assign_splits(make_dataset(196, per_class=1), "zsl", val_fraction=0.0)
    assert split_summary(out)["train"]["classes"] == 98
    assert split_summary(out)["test"]["classes"] == 98
    assert split_summary(out)["val"] == {"images": 0, "classes": 0}
    odd = assign_splits(make_dataset(5), "zsl", val_fraction=0.0)
    assert sorted(classes_in(odd, "train")) == ["001.class", "002.class", "003.class"]


def test_zsl_val_has_at_least_two_classes_when_train_can_spare_them(caplog) -> None:
    out = assign_splits(make_dataset(8), "zsl", val_fraction=0.01)  # round(0.04) = 0 -> 2
    assert len(classes_in(out, "val")) == 2 and len(classes_in(out, "train")) == 2
    with caplog.at_level(logging.WARNING):
        small = assign_splits(make_dataset(6), "zsl", val_fraction=0.2)  # 3 train classes
    assert classes_in(small, "val") == set() and len(classes_in(small, "train")) == 3
    assert "no validation classes" in caplog.text


def test_sop_official_split_is_used() -> None:
    sides = ["test", "train", "train", "test", "train", "test", "train"]
    ds = make_dataset(7, official=sides)
    out = assign_splits(ds, "zsl", val_fraction=0.3, seed=1)
    official_train = {c for c, s in zip(ds.classes, sides, strict=True) if s == "train"}
    assert classes_in(out, "test") == {c for c in ds.classes if c not in official_train}
    assert classes_in(out, "train") | classes_in(out, "val") == official_train
    assert len(classes_in(out, "val")) == 2


def test_official_split_must_be_consistent() -> None:
    ds = make_dataset(2, official=["train", "test"])
    ds.records[0].meta["official_split"] = "test"
    with pytest.raises(DataError, match="in both the official train and test"):
        assign_splits(ds, "zsl")
    ds.records[0].meta["official_split"] = None
    with pytest.raises(DataError, match="needs 'train' or 'test'"):
        assign_splits(ds, "zsl")


def test_fsl_every_class_in_train_and_test_50_50() -> None:
    sizes = [10, 7, 4, 3, 2]
    out = assign_splits(make_dataset(5, per_class=sizes), "fsl", val_fraction=0.2, seed=3)
    for name, n in zip(make_dataset(5, per_class=sizes).classes, sizes, strict=True):
        mine = [r for r in out if r.label == name]
        n_test = sum(r.split == "test" for r in mine)
        n_val = sum(r.split == "val" for r in mine)
        assert n_test == n // 2
        n_train_side = n - n_test
        # val: round(0.2 * train side), at least 1 when the class has >= 3 train-side images
        assert n_val == ({5: 1, 4: 1, 2: 0, 1: 0}[n_train_side])
        assert sum(r.split == "train" for r in mine) >= 1
    assert classes_in(out, "train") == classes_in(out, "test") == {r.label for r in out}


def test_fsl_one_image_class_is_train_only_and_reported(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        out = assign_splits(make_dataset(3, per_class=[1, 4, 4]), "fsl")
    assert [r.split for r in out if r.label == "001.class"] == ["train"]
    assert "single image" in caplog.text and "001.class" in caplog.text


@pytest.mark.parametrize("scheme", ["zsl", "fsl"])
def test_deterministic_order_independent_and_seed_sensitive(scheme: str) -> None:
    ds = make_dataset(40, per_class=6)
    a = {r.id: r.split for r in assign_splits(ds, scheme, seed=7)}
    shuffled = make_dataset(40, per_class=6)
    random.Random(1).shuffle(shuffled.records)
    b = {r.id: r.split for r in assign_splits(shuffled, scheme, seed=7)}
    c = {r.id: r.split for r in assign_splits(ds, scheme, seed=8)}
    assert a == b
    assert a != c


@pytest.mark.parametrize("scheme", ["zsl", "fsl"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_val_never_overlaps_test_and_test_ignores_val_fraction(scheme: str, seed: int) -> None:
    ds = make_dataset(30, per_class=5)
    out = assign_splits(ds, scheme, val_fraction=0.3, seed=seed)
    no_val = assign_splits(ds, scheme, val_fraction=0.0, seed=seed)
    assert ids_in(out, "val") and ids_in(out, "val").isdisjoint(ids_in(out, "test"))
    assert ids_in(out, "test") == ids_in(no_val, "test")
    assert ids_in(no_val, "val") == set()
    if scheme == "zsl":
        assert classes_in(out, "val").isdisjoint(classes_in(out, "train") | classes_in(out, "test"))


def test_returns_copies_in_input_order() -> None:
    ds = make_dataset(4)
    out = assign_splits(ds, "fsl")
    assert [r.id for r in out] == [r.id for r in ds.records]
    assert all(r.split == "unassigned" for r in ds.records)
    out[0].meta["touched"] = True
    assert "touched" not in ds.records[0].meta


@pytest.mark.parametrize("fraction", [-0.1, 0.5, 0.9])
def test_val_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 0.5\)"):
        assign_splits(make_dataset(4), "zsl", val_fraction=fraction)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown split scheme"):
        assign_splits(make_dataset(4), "gzsl")  # type: ignore[arg-type]


def test_split_summary_always_has_three_keys() -> None:
    assert split_summary([]) == {s: {"images": 0, "classes": 0} for s in ("train", "val", "test")}


def test_zsl_with_one_class_leaves_no_test_split_and_says_what_to_do() -> None:
    with pytest.raises(DataError, match="split rule 'zsl'") as err:
        assign_splits(make_dataset(1), "zsl")
    message = str(err.value)
    assert "has 1 class" in message and "test split would be empty" in message
    assert "--split fsl" in message and "add classes" in message
    assert assign_splits(make_dataset(1), "fsl")  # the way out it names works


@pytest.mark.parametrize(("sides", "empty"), [(["train"] * 3, "test"), (["test"] * 3, "train")])
def test_official_split_with_one_side_only(sides: list[str], empty: str) -> None:
    with pytest.raises(DataError, match=f"all 3 classes .* the {empty} split would be empty"):
        assign_splits(make_dataset(3, official=sides), "zsl")


def test_fsl_with_only_single_image_classes_leaves_no_test_split() -> None:
    with pytest.raises(DataError, match=r"all 3 class.*single image.*--split zsl"):
        assign_splits(make_dataset(3, per_class=1), "fsl")
    with pytest.raises(DataError, match="single image") as err:
        assign_splits(make_dataset(1, per_class=1), "fsl")
    assert "--split zsl" not in str(err.value)  # one class: zsl would not help either


def test_a_single_test_class_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        out = assign_splits(make_dataset(3), "zsl", val_fraction=0.0)
    assert len(classes_in(out, "test")) == 1
    assert "test split has a single class ('003.class')" in caplog.text
    assert "--split fsl" in caplog.text

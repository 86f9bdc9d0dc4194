"""Train / val / test assignment: the zero-shot (``zsl``) and few-shot (``fsl``) rules.

Retrieval benchmarks are evaluated two ways, and augmentation helps them differently:

* ``zsl`` (zero-shot, the deep-metric-learning protocol): test classes are never seen in
  training. Without an official split, the first half of the classes in the dataset's own
  order trains and the second half tests (CUB 1-100 / 101-200, Cars 1-98 / 99-196; an odd
  count gives train the extra class). SOP ships its own class split, which is used as is.
* ``fsl`` (few-shot / seen classes): every class is in both train and test; each class's
  images are split 50:50 (test gets the smaller half; a one-image class is train only).

**Validation is for model selection** (epochs, hyper-parameters, filter thresholds), so it
is always carved out of *train*, never out of test: nothing ever selects on test, and the
test numbers stay an honest estimate. Under ``zsl`` val is made of held-out train *classes*,
mirroring the unseen-class test; under ``fsl`` it is held-out train *images* of each class.

Every random choice is a keyed hash of (seed, what is being chosen, id), which makes the
split reproducible across Python versions and platforms and independent of the order the
records arrive in. The test side never depends on ``val_fraction``, and under ``zsl`` not on
the seed either.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from typing import Literal

from atlantis.data.dataset import Dataset
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError

logger = logging.getLogger(__name__)

SplitScheme = Literal["zsl", "fsl"]
SPLIT_NAMES = ("train", "val", "test")
MIN_VAL_CLASSES = 2  # retrieval among fewer than 2 classes is trivially perfect


def assign_splits(
    dataset: Dataset, scheme: SplitScheme, *, val_fraction: float = 0.1, seed: int = 0
) -> list[ImageRecord]:
    """Return copies of ``dataset.records`` (same order) with ``split`` set by ``scheme``."""
    if not 0 <= val_fraction < 0.5:
        raise ValueError(f"val_fraction must be in [0, 0.5), got {val_fraction}")
    dataset.validate()
    if scheme == "zsl":
        split_of = _zsl(dataset, val_fraction, seed)
    elif scheme == "fsl":
        split_of = _fsl(dataset, val_fraction, seed)
    else:
        raise ValueError(f"unknown split scheme {scheme!r}; valid: 'zsl', 'fsl'")
    _check_usable(dataset, scheme, split_of)
    # Deep copies: nothing (meta, captions) is shared with the input records. The split
    # values are the Literal's own names, so no re-validation is needed.
    return [r.model_copy(update={"split": split_of[r.id]}, deep=True) for r in dataset.records]


def split_summary(records: list[ImageRecord]) -> dict[str, dict[str, int]]:
    """Images and classes per split, always with the keys train, val and test."""
    images: dict[str, int] = defaultdict(int)
    classes: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        images[rec.split] += 1
        classes[rec.split].add(rec.label)
    return {s: {"images": images[s], "classes": len(classes[s])} for s in SPLIT_NAMES}


def _check_usable(dataset: Dataset, scheme: str, split_of: dict[str, str]) -> None:
    """Refuse a split that leaves train or test empty; warn when test has a single class.

    Every later stage needs both: nothing trains on an empty train split, and an empty test
    split gives no Recall@K at all (a run would fail at its first evaluation, long after
    ingest). Retrieval among one test class is trivially perfect, worth a warning only.
    """
    n = len(dataset.classes)
    classes: dict[str, set[str]] = defaultdict(set)
    for rec in dataset.records:
        classes[split_of[rec.id]].add(rec.label)
    train = classes["train"] | classes["val"]  # val is carved out of train
    if dataset.official_split and scheme == "zsl" and not (train and classes["test"]):
        empty, side = ("test", "train") if train else ("train", "test")
        raise DataError(
            f"split rule 'zsl' uses the dataset's official class split, and all {n} classes are "
            f"on its {side} side, so the {empty} split would be empty: list {empty} classes in "
            f"the dataset's {empty} file, or use --split fsl (every class in train and test)",
            dataset.root,
        )
    if scheme == "zsl" and not classes["test"]:
        raise DataError(
            f"split rule 'zsl' trains on the first half of the classes and tests on the rest "
            f"(unseen ones); the dataset has {n} class, so the test split would be empty: add "
            "classes (zsl needs at least 2), or use --split fsl (every class in train and test)",
            dataset.root,
        )
    if scheme == "fsl" and not classes["test"]:
        zsl = ", or use --split zsl (test on unseen classes)" if n >= 2 else ""
        raise DataError(
            f"split rule 'fsl' splits each class's images 50:50 between train and test; all {n} "
            "class(es) have a single image, so the test split would be empty: add images (at "
            f"least 2 per class){zsl}",
            dataset.root,
        )
    if len(classes["test"]) == 1:
        logger.warning(
            "%s: the test split has a single class (%r), so every Recall@K is trivially 1; "
            "add classes%s",
            scheme,
            next(iter(classes["test"])),
            " or use --split fsl" if scheme == "zsl" else "",
        )


def _zsl(dataset: Dataset, val_fraction: float, seed: int) -> dict[str, str]:
    """Record id -> split, splitting by class; val classes are held out of train."""
    train, test = _zsl_classes(dataset)
    n_val = _half_up(val_fraction * len(train))
    if val_fraction > 0 and n_val < MIN_VAL_CLASSES:
        n_val = MIN_VAL_CLASSES
    if n_val and len(train) - n_val < 2:
        logger.warning(
            "zsl: only %d train classes; no validation classes held out (need %d val + 2 train)",
            len(train),
            n_val,
        )
        n_val = 0
    val = set(_permute(train, seed, "zsl-val")[:n_val])
    split_of_class = {c: "test" for c in test}
    split_of_class.update({c: "val" if c in val else "train" for c in train})
    return {r.id: split_of_class[r.label] for r in dataset.records}


def _zsl_classes(dataset: Dataset) -> tuple[list[str], list[str]]:
    """Train and test classes, each in dataset order."""
    if not dataset.official_split:
        n_train = math.ceil(len(dataset.classes) / 2)
        return dataset.classes[:n_train], dataset.classes[n_train:]
    side: dict[str, str] = {}
    for rec in dataset.records:
        official = rec.meta.get("official_split")
        if official not in ("train", "test"):
            raise DataError(
                f"record {rec.id!r} has meta['official_split'] = {official!r}; the dataset "
                "declares an official split, so every record needs 'train' or 'test'",
                dataset.root,
            )
        if side.setdefault(rec.label, official) != official:
            raise DataError(
                f"class {rec.label!r} is in both the official train and test splits; a "
                "zero-shot split needs disjoint classes",
                dataset.root,
            )
    return (
        [c for c in dataset.classes if side[c] == "train"],
        [c for c in dataset.classes if side[c] == "test"],
    )


def _fsl(dataset: Dataset, val_fraction: float, seed: int) -> dict[str, str]:
    """Record id -> split, splitting each class's images; val images come from train."""
    ids_of: dict[str, list[str]] = defaultdict(list)
    for rec in dataset.records:
        ids_of[rec.label].append(rec.id)
    split_of: dict[str, str] = {}
    single: list[str] = []
    for label in dataset.classes:
        order = _permute(ids_of[label], seed, f"fsl:{label}")
        n_test = len(order) // 2
        rest = len(order) - n_test
        n_val = max(1, _half_up(val_fraction * rest)) if val_fraction > 0 and rest >= 3 else 0
        for i, rid in enumerate(order):
            split_of[rid] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        if len(order) == 1:
            single.append(label)
    if single:
        logger.warning(
            "fsl: %d class(es) have a single image and are in train only (not in test): %s",
            len(single),
            single[:10],
        )
    return split_of


def _permute(items: list[str], seed: int, salt: str) -> list[str]:
    """A seeded shuffle that is a pure function of (seed, salt, the set of items).

    Items are sorted first, then ordered by a keyed hash: the result does not depend on the
    input order, and unlike ``random.shuffle`` it is stable across Python versions.
    """

    def key(item: str) -> bytes:
        return hashlib.blake2b(f"{seed}\0{salt}\0{item}".encode(), digest_size=16).digest()

    return sorted(sorted(items), key=key)


def _half_up(x: float) -> int:
    """Round half up (``round`` rounds 2.5 to 2); the epsilon absorbs 0.29 * 50 = 14.4999…."""
    return math.floor(x + 0.5 + 1e-9)

"""The ``cub`` layout: CUB-200-2011 as distributed (``CUB_200_2011/``).

Four space-separated index files tie it together, all keyed by a numeric image id:
``images.txt`` (id -> path under ``images/``), ``image_class_labels.txt`` (id -> class id),
``classes.txt`` (class id -> name) and ``train_test_split.txt`` (id -> 1 if training image).
Classes are ordered by class id so the zero-shot split is the literature's 1-100 / 101-200.
The official train/test flag is a *few-shot-style* image split, not the zero-shot one, so it
is kept only as ``meta["official_train"]``.
"""

from __future__ import annotations

from pathlib import Path

from atlantis.data.dataset import READERS, Dataset
from atlantis.data.readers.common import BadItems, check_image, resolve_under_root, utf8_text
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError

INDEX_FILES = ("images.txt", "image_class_labels.txt", "classes.txt", "train_test_split.txt")


@READERS.register("cub")
def read_cub(root: Path, *, skip_bad: bool = False, verify_images: bool = True) -> Dataset:
    """CUB-200-2011: images.txt, image_class_labels.txt, classes.txt, train_test_split.txt."""
    base = _find_base(root)
    bad = BadItems(skip_bad)
    classes = _read_classes(base / "classes.txt")  # structural: a bad line always stops
    images_txt = base / "images.txt"
    labels_txt = base / "image_class_labels.txt"
    split_txt = base / "train_test_split.txt"
    paths = _read_index(images_txt, bad)
    labels = _read_index(labels_txt, bad)
    flags = _read_index(split_txt, bad)

    for index, file in ((labels, labels_txt), (flags, split_txt)):
        for image_id, (line, _) in index.items():
            if image_id not in paths:
                with bad.guard():
                    raise DataError(f"image id {image_id} is not listed in images.txt", file, line)

    records: list[ImageRecord] = []
    for image_id, (line, raw_path) in paths.items():
        with bad.guard(path=f"images/{raw_path}"):
            class_id = _lookup(labels, image_id, labels_txt, line)
            is_train = _lookup(flags, image_id, split_txt, line)
            if class_id not in classes:
                raise DataError(
                    f"class id {class_id} of image {image_id} is not in classes.txt",
                    labels_txt,
                    labels[image_id][0],
                )
            if is_train not in (0, 1):
                raise DataError(
                    f"is_training_image must be 0 or 1, got {is_train}",
                    split_txt,
                    flags[image_id][0],
                )
            rel, full = resolve_under_root(base / "images", raw_path, images_txt, line)
            check_image(full, images_txt, line, verify=verify_images)
            records.append(
                ImageRecord(
                    id=f"cub-{image_id}",
                    path=f"images/{rel}",
                    label=classes[class_id],
                    meta={"class_id": class_id, "official_train": bool(is_train)},
                )
            )
    ordered = [classes[c] for c in sorted(classes)]
    return Dataset(format="cub", root=base, classes=ordered, records=records, skipped=bad.skipped)


def _find_base(root: Path) -> Path:
    """Accept the folder holding the index files, or the folder holding ``CUB_200_2011/``."""
    for base in (root, root / "CUB_200_2011"):
        if (base / "images.txt").is_file():
            missing = [n for n in INDEX_FILES if not (base / n).is_file()]
            if missing:
                raise DataError(f"CUB index file(s) missing: {missing}", base)
            return base
    raise DataError(
        f"not a CUB-200-2011 folder: expected {', '.join(INDEX_FILES)} and images/ here "
        "or under CUB_200_2011/",
        root,
    )


def _split_line(text: str, file: Path, line: int, what: str) -> tuple[int, str]:
    """Parse ``<integer> <value>``; ``what`` names the expected value in the error."""
    parts = text.strip().split(maxsplit=1)
    if len(parts) != 2 or not parts[0].isdigit():
        raise DataError(f"expected '<id> <{what}>', got {text.strip()!r}", file, line)
    return int(parts[0]), parts[1].strip()


def _read_classes(file: Path) -> dict[int, str]:
    classes: dict[int, str] = {}
    with utf8_text(file), open(file, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if text.strip():
                class_id, name = _split_line(text, file, line, "class name")
                if class_id in classes:
                    raise DataError(f"class id {class_id} is listed twice", file, line)
                classes[class_id] = name
    return classes


def _read_index(file: Path, bad: BadItems) -> dict[int, tuple[int, str]]:
    """Map image id -> (line, value); bad lines are skipped or raised through ``bad``."""
    out: dict[int, tuple[int, str]] = {}
    with utf8_text(file), open(file, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            with bad.guard():
                image_id, value = _split_line(text, file, line, "value")
                if image_id in out:
                    raise DataError(
                        f"image id {image_id} is listed twice (first at line {out[image_id][0]})",
                        file,
                        line,
                    )
                out[image_id] = (line, value)
    return out


def _lookup(index: dict[int, tuple[int, str]], image_id: int, file: Path, line: int) -> int:
    """The integer ``index`` holds for ``image_id``; an error names the file it is missing from."""
    if image_id not in index:
        raise DataError(f"image id {image_id} (images.txt line {line}) has no line here", file)
    own_line, value = index[image_id]
    if not value.isdigit():
        raise DataError(f"expected '<image id> <integer>', got value {value!r}", file, own_line)
    return int(value)

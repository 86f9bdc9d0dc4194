"""The ``sop`` layout: Stanford Online Products (``Ebay_train.txt`` / ``Ebay_test.txt``).

SOP defines its own zero-shot split: the two files hold disjoint classes (11,318 train,
11,316 test). The reader therefore sets ``Dataset.official_split`` and records each image's
file as ``meta["official_split"]``, which the ``zsl`` rule uses instead of halving the class
list. Each file starts with the header ``image_id class_id super_class_id path``; paths are
relative to root (``bicycle_final/111085122871_0.JPG``). SOP classes have no names, so a
class's label is its class id; the super class (``bicycle`` from ``bicycle_final/``) is
kept in meta for anything that wants words.
"""

from __future__ import annotations

from pathlib import Path

from atlantis.data.dataset import READERS, Dataset
from atlantis.data.readers.common import BadItems, check_image, resolve_under_root, utf8_text
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError

SPLIT_FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}
HEADER = ["image_id", "class_id", "super_class_id", "path"]


@READERS.register("sop")
def read_sop(root: Path, *, skip_bad: bool = False, verify_images: bool = True) -> Dataset:
    """Stanford Online Products: Ebay_train.txt and Ebay_test.txt (official zero-shot split)."""
    missing = [name for name in SPLIT_FILES.values() if not (root / name).is_file()]
    if missing:
        raise DataError(f"SOP split file(s) missing: {missing}", root)
    bad = BadItems(skip_bad)
    class_home: dict[int, tuple[str, Path, int]] = {}  # class id -> (split, file, first line)
    records: list[ImageRecord] = []
    for split, name in SPLIT_FILES.items():
        file = root / name
        for line, parts in _rows(file):
            with bad.guard(path=parts[3] if len(parts) == 4 else None):
                if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
                    raise DataError(
                        f"expected '{' '.join(HEADER)}' with integer ids, got {' '.join(parts)!r}",
                        file,
                        line,
                    )
                image_id, class_id, super_id = (int(p) for p in parts[:3])
                home = class_home.setdefault(class_id, (split, file, line))
                if home[0] != split:
                    raise DataError(
                        f"class {class_id} is in both {home[1].name} (line {home[2]}) and "
                        f"{name}; SOP's train and test classes must be disjoint",
                        file,
                        line,
                    )
                bad.claim_id(f"sop-{image_id}", file, line)
                rel, full = resolve_under_root(root, parts[3], file, line)
                check_image(full, file, line, verify=verify_images)
                records.append(
                    ImageRecord(
                        id=f"sop-{image_id}",
                        path=rel,
                        label=str(class_id),
                        meta={
                            "class_id": class_id,
                            "super_class_id": super_id,
                            "super_class": rel.split("/")[0].removesuffix("_final"),
                            "official_split": split,
                        },
                    )
                )
    classes = [str(c) for c in sorted({int(r.label) for r in records})]
    return Dataset(
        format="sop",
        root=root,
        classes=classes,
        records=records,
        official_split=True,
        skipped=bad.skipped,
    )


def _rows(file: Path) -> list[tuple[int, list[str]]]:
    """Check the header, then return ``(line, whitespace-split fields)`` per non-blank row."""
    with utf8_text(file), open(file, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    if not lines or lines[0].split() != HEADER:
        got = lines[0].strip() if lines else "an empty file"
        raise DataError(f"expected the header '{' '.join(HEADER)}', got {got!r}", file, 1)
    return [
        (line, text.split(maxsplit=3))
        for line, text in enumerate(lines[1:], start=2)
        if text.strip()
    ]

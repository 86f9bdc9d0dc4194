"""Dataset readers: one module per native layout, all registered in ``READERS``.

``read_dataset`` is the one entry point the rest of ATLANTIS uses. It does the checks that
are the same for every format (the root exists, the format name is known), runs the reader,
applies the ``--skip-bad`` policy for classes left without images, and validates the result,
so every reader returns a ``Dataset`` that downstream stages can trust.
"""

from __future__ import annotations

from pathlib import Path

from atlantis.data.dataset import READERS, Dataset, SkippedItem

# Importing the format modules registers them in READERS.
from atlantis.data.readers import cars196, cub, imagefolder, manifest, sop  # noqa: F401
from atlantis.errors import DataError

__all__ = ["READERS", "read_dataset"]

# Formats whose root may be a single file (the manifest itself) rather than a folder.
FILE_ROOT_FORMATS = frozenset({"manifest"})


def read_dataset(
    format: str, root: Path | str, *, skip_bad: bool = False, verify_images: bool = True
) -> Dataset:
    """Read the dataset at ``root`` in layout ``format`` and validate it.

    ``skip_bad=False`` stops at the first bad item with a ``DataError`` naming its file and
    line. ``skip_bad=True`` leaves bad items out, and also drops classes that end up with no
    images (a class with no images cannot be split or evaluated); both are listed in
    ``Dataset.skipped``. ``verify_images=False`` skips opening each image (faster re-reads).
    An unknown ``format`` raises the registry's error, which lists the valid names.
    """
    reader = READERS.get(format)
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset root does not exist (format {format!r})", root)
    if not root.is_dir() and format.lower() not in FILE_ROOT_FORMATS:
        raise DataError(f"dataset root must be a folder for format {format!r}", root)
    dataset = reader(root, skip_bad=skip_bad, verify_images=verify_images)
    if skip_bad:
        _drop_empty_classes(dataset)
    if not dataset.records:
        skipped = f" ({len(dataset.skipped)} bad item(s) skipped)" if dataset.skipped else ""
        raise DataError(f"no images found for format {format!r}{skipped}", dataset.root)
    dataset.validate()
    return dataset


def _drop_empty_classes(dataset: Dataset) -> None:
    counts = dataset.class_counts()
    empty = [c for c in dataset.classes if counts[c] == 0]
    for name in empty:
        dataset.skipped.append(
            SkippedItem(source=str(dataset.root), reason=f"class {name!r} has no images; dropped")
        )
    dataset.classes = [c for c in dataset.classes if counts[c] > 0]

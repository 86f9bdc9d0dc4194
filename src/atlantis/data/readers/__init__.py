"""Dataset readers: one module per native layout, all registered in ``READERS``.

``read_dataset`` is the one entry point the rest of ATLANTIS uses. It does the checks that
are the same for every format (the root exists, the format name is known), runs the reader,
applies the ``--skip-bad`` policy for classes left without images, and validates the result,
so every reader returns a ``Dataset`` that downstream stages can trust.
"""

from __future__ import annotations

import logging
from pathlib import Path

from atlantis.data.dataset import READERS, Dataset, SkippedItem

# Importing the format modules registers them in READERS.
from atlantis.data.readers import cars196, cub, hf, imagefolder, manifest, sop  # noqa: F401
from atlantis.errors import DataError

__all__ = ["READERS", "read_dataset", "root_folder"]

logger = logging.getLogger(__name__)

# Per format: what its root folder holds (for errors), and the files in it that a root may
# name instead, meaning their folder (None: any file, which is then the manifest itself).
ROOT_LAYOUTS: dict[str, tuple[str, frozenset[str] | None]] = {
    "imagefolder": ("one sub-folder of images per class (<root>/<class>/<image>)", frozenset()),
    "manifest": (f"the manifest ({', '.join(manifest.MANIFEST_NAMES)}) and its images", None),
    "cub": (
        f"CUB_200_2011/, or its {', '.join(cub.INDEX_FILES)} and images/",
        frozenset(cub.INDEX_FILES),
    ),
    "cars196": (f"{cars196.ANNOTATIONS_FILE} and car_ims/", frozenset({cars196.ANNOTATIONS_FILE})),
    "sop": (
        f"{', '.join(sop.SPLIT_FILES.values())} and the <class>_final/ image folders",
        frozenset({*sop.SPLIT_FILES.values(), "Ebay_info.txt"}),
    ),
    "hf": ("a datasets save_to_disk folder, or Parquet files (*.parquet)", None),
}


def read_dataset(
    format: str,
    root: Path | str,
    *,
    skip_bad: bool = False,
    verify_images: bool = True,
    options: object = None,
) -> Dataset:
    """Read the dataset at ``root`` in layout ``format`` and validate it.

    ``skip_bad=False`` stops at the first bad item with a ``DataError`` naming its file and
    line. ``skip_bad=True`` leaves bad items out, and also drops classes that end up with no
    images (a class with no images cannot be split or evaluated); both are listed in
    ``Dataset.skipped`` and logged. ``verify_images=False`` skips decoding each image (faster
    re-reads). ``root`` may also name the format's own annotation file (``cars_annos.mat``,
    ``images.txt``, a manifest), as users often do: its folder is the root then. An unknown
    ``format`` raises the registry's error, which lists the valid names. ``options``: the
    format's own options (``data.hf`` for ``hf``), passed on only when given.
    """
    reader = READERS.get(format)
    extra = {} if options is None else {"options": options}
    dataset = reader(
        root_folder(format, root), skip_bad=skip_bad, verify_images=verify_images, **extra
    )
    if skip_bad:
        _drop_empty_classes(dataset)
        _log_skipped(dataset)
    if not dataset.records:
        skipped = f" ({len(dataset.skipped)} bad item(s) skipped)" if dataset.skipped else ""
        raise DataError(f"no images found for format {format!r}{skipped}", dataset.root)
    dataset.validate()
    return dataset


def root_folder(format: str, root: Path | str) -> Path:
    """The folder ``format``'s reader reads, from ``root`` as given (a folder, or a file in it).

    A root that does not exist, or a file the format does not read, is a ``DataError``
    saying what the root should hold. The manifest reader takes its file itself.
    """
    root = Path(root)
    holds, files = ROOT_LAYOUTS.get(format.lower(), ("the dataset", frozenset()))
    if not root.exists():
        raise DataError(
            f"dataset root does not exist (format {format!r}); point --root (data.root) at the "
            f"folder holding {holds}",
            root,
        )
    if root.is_dir() or files is None:
        return root
    if root.name in files:
        return root.parent
    raise DataError(
        f"dataset root is a file, but format {format!r} reads a folder: point --root "
        f"(data.root) at the folder holding {holds}",
        root,
    )


def _log_skipped(dataset: Dataset, limit: int = 10) -> None:
    """Name the skipped items on the console, not only in the run's files."""
    for item in dataset.skipped[:limit]:
        where = item.path or item.source
        logger.warning("skipped %s: %s", where, item.reason)
    if len(dataset.skipped) > limit:
        logger.warning("... and %d more skipped item(s)", len(dataset.skipped) - limit)


def _drop_empty_classes(dataset: Dataset) -> None:
    counts = dataset.class_counts()
    empty = [c for c in dataset.classes if counts[c] == 0]
    for name in empty:
        dataset.skipped.append(
            SkippedItem(source=str(dataset.root), reason=f"class {name!r} has no images; dropped")
        )
    dataset.classes = [c for c in dataset.classes if counts[c] > 0]

"""The ``imagefolder`` layout: ``root/<class>/<image>``, one folder per class.

The simplest way to bring your own data: no annotation file to write. Class order is the
sorted folder names, so the zero-shot "first half of the classes" rule is reproducible from
the folder listing alone. Images may sit in sub-folders of a class folder (they belong to
that class); hidden files and folders (``.DS_Store``, ``.git``) are ignored.
"""

from __future__ import annotations

from pathlib import Path

from atlantis.data.dataset import READERS, Dataset
from atlantis.data.readers.common import BadItems, check_image, is_image_name, resolve_under_root
from atlantis.data.records import ImageRecord
from atlantis.errors import DataError


@READERS.register("imagefolder")
def read_imagefolder(root: Path, *, skip_bad: bool = False, verify_images: bool = True) -> Dataset:
    """Image folder: root/<class>/<image>, classes in sorted folder-name order."""
    bad = BadItems(skip_bad)
    classes: list[str] = []
    records: list[ImageRecord] = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if _hidden(entry.name):
            continue
        if not entry.is_dir():
            if is_image_name(entry.name):  # an image with no class: almost surely a mistake
                with bad.guard(path=entry.name):
                    raise DataError(
                        "image is not inside a class folder (expected root/<class>/<image>)",
                        entry,
                    )
            continue  # README, LICENSE, a manifest, ...: not part of the layout
        classes.append(entry.name)
        for file in _files_under(entry):
            rel_raw = file.relative_to(root).as_posix()
            with bad.guard(path=rel_raw):
                rel, full = resolve_under_root(root, rel_raw, file)
                if not is_image_name(file.name):
                    raise DataError(
                        "not an image (expected one of .jpg .jpeg .png .bmp .gif .webp .tif "
                        ".tiff); remove it or use --skip-bad",
                        file,
                    )
                check_image(full, file, verify=verify_images)
                records.append(ImageRecord(id=rel, path=rel, label=entry.name))
    return Dataset(
        format="imagefolder", root=root, classes=classes, records=records, skipped=bad.skipped
    )


def _files_under(folder: Path) -> list[Path]:
    """Every non-hidden file below ``folder``, in sorted relative-path order."""
    files = [
        p
        for p in folder.rglob("*")
        if not any(_hidden(part) for part in p.relative_to(folder).parts) and not p.is_dir()
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _hidden(name: str) -> bool:
    return name.startswith(".")

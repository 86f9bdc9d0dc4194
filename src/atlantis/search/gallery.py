"""Where a gallery comes from: a folder of images, or one split of an ingested run.

A folder is walked recursively (hidden files and folders left out); an image's label is
the name of the top sub-folder it sits in (the usual ``class/image.jpg`` layout), or None
for images directly in the folder. Files with an image extension that PIL cannot even
identify are returned as skipped, with the reason, rather than failing the whole index:
one stray ``.jpg`` that is really an HTML page should not stop a 100,000-image build.
(Pixels are decoded later, and only for images that still need a vector.)
"""

from __future__ import annotations

from pathlib import Path

from atlantis.data.images import open_image
from atlantis.data.readers.common import is_image_name
from atlantis.errors import ConfigError, DataError
from atlantis.search.items import GalleryItem
from atlantis.store.run import Run

SPLITS = ("train", "val", "test", "unassigned")


def gallery_from_folder(folder: Path) -> tuple[list[GalleryItem], list[tuple[Path, str]]]:
    """Images under ``folder`` (ids are POSIX paths relative to it) and the skipped files."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError("gallery folder not found (give a folder of images)", root)
    root = root.resolve()
    items: list[GalleryItem] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not is_image_name(path.name):
            continue
        if not path.is_file():
            continue
        reason = _unreadable(path)
        if reason is not None:
            skipped.append((path, reason))
            continue
        label = rel.parts[0] if len(rel.parts) > 1 else None
        items.append(GalleryItem(rel.as_posix(), path, label))
    return items, skipped


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not an image PIL can open (header only), or None when it is."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with open_image(path) as image:
            image.size  # noqa: B018 - the header parsed
    except DataError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError...
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None


def gallery_from_run(run: Path, split: str) -> list[GalleryItem]:
    """The ingested records of ``split`` (ids are record ids, labels their classes)."""
    from atlantis.data.ingest import load_ingested
    from atlantis.data.paths import image_paths

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    r = Run(Path(run).expanduser())
    records, _ = load_ingested(r)
    chosen = [rec for rec in records if rec.split == split]
    if not chosen:
        counts = {s: sum(rec.split == s for rec in records) for s in SPLITS}
        have = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
        raise DataError(f"split {split!r} has no images (the run has: {have})", r.root)
    paths = image_paths(r, chosen)
    return [GalleryItem(rec.id, p, rec.label) for rec, p in zip(chosen, paths, strict=True)]

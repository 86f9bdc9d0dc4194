"""Per-class review grids: kept images on one row, removed ones on the next.

A delta is a judgement call (the paper tunes it per dataset), and numbers alone do not show
whether the filter removed the failed generations or the interesting ones. One small PNG per
class lets a person check that at a glance; the report links them from ``stats.json``.
Removed images are shown worst first (outliers by distance ratio, then duplicates).
Transparent images are composited on white, exactly as the embedder that scored them saw
them (``atlantis.embed.preprocess.to_rgb``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from atlantis.data.images import open_image
from atlantis.data.paths import image_paths
from atlantis.data.records import ImageRecord
from atlantis.embed.preprocess import to_rgb
from atlantis.filtering.ordc import OUTLIER
from atlantis.store.atomic import atomic_write_bytes
from atlantis.store.run import Run

__all__ = ["grid_filenames", "write_class_grids", "write_grid"]

THUMB = 64
PAD = 4
LABEL_W = 64
BACKGROUND = (255, 255, 255)
MISSING = (200, 200, 200)


def write_class_grids(
    run: Run,
    folder: Path,
    kept: list[ImageRecord],
    removed: list[ImageRecord],
    per_class: list[dict[str, Any]],
    per_row: int,
) -> None:
    """``folder/grids/<class>.png`` for each row of ``per_class``; sets the row's ``grid``."""
    if per_row == 0:
        return
    names = grid_filenames([row["class"] for row in per_class])
    by_class: dict[str, tuple[list[ImageRecord], list[ImageRecord]]] = {c: ([], []) for c in names}
    for rec in kept:
        by_class[rec.label][0].append(rec)
    for rec in sorted(removed, key=_severity):
        by_class[rec.label][1].append(rec)
    for row in per_class:
        k, r = (recs[:per_row] for recs in by_class[row["class"]])
        path = folder / "grids" / names[row["class"]]
        write_grid(path, image_paths(run, k), image_paths(run, r), per_row)
        row["grid"] = f"grids/{names[row['class']]}"


def _severity(rec: ImageRecord) -> tuple[int, float]:
    """Outliers first, farthest first; then the other removals (``meta["filter"]``)."""
    info = rec.meta["filter"]
    return (0 if info["reason"] == OUTLIER else 1, -(info["ratio"] or 0.0))


def grid_filenames(classes: Sequence[str]) -> dict[str, str]:
    """A distinct, filesystem-safe ``<slug>.png`` per class name (``a/b`` -> ``a_b.png``)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for cls in classes:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", cls).strip("._") or "class"
        name, n = slug, 1
        while name.lower() in used:  # case-insensitive filesystems too
            n += 1
            name = f"{slug}-{n}"
        used.add(name.lower())
        names[cls] = f"{name}.png"
    return names


def write_grid(path: Path, kept: Sequence[Path], removed: Sequence[Path], per_row: int) -> None:
    """Write a two-row grid PNG of up to ``per_row`` kept and ``per_row`` removed images."""
    cell = THUMB + PAD
    columns = max(1, min(per_row, max(len(kept), len(removed))))
    width = LABEL_W + columns * cell + PAD
    canvas = Image.new("RGB", (width, 2 * cell + PAD), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for row, (title, paths) in enumerate((("kept", kept), ("removed", removed))):
        y = PAD + row * cell
        draw.text((PAD, y + THUMB // 2 - 6), f"{title}\n{len(paths)}", fill=(0, 0, 0))
        for col, p in enumerate(paths[:per_row]):
            canvas.paste(_thumbnail(p), (LABEL_W + col * cell, y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def _thumbnail(path: Path) -> Image.Image:
    """A THUMB x THUMB letterboxed thumbnail, or a grey square if the file cannot be read."""
    try:
        with open_image(path) as im:
            im.draft("RGB", (THUMB, THUMB))  # JPEG: decode at reduced size
            # On white, as the embedder sees it: convert("RGB") would show transparent
            # pixels (emoji, logos) in whatever colour they hold, often black.
            thumb = ImageOps.contain(to_rgb(im), (THUMB, THUMB))
    except OSError:
        return Image.new("RGB", (THUMB, THUMB), MISSING)
    tile = Image.new("RGB", (THUMB, THUMB), BACKGROUND)
    tile.paste(thumb, ((THUMB - thumb.width) // 2, (THUMB - thumb.height) // 2))
    return tile

"""Query images: opened with an error that names the file, and their label when known.

A query's label is known when the query *is* a gallery file, or sits in a folder named
like one of the gallery's classes (``photos/cat/new.jpg`` against a gallery with a ``cat``
class). The contact sheet marks the hits that share it, the quickest visual check of a
model: a row of ticks is a good retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from atlantis.embed.preprocess import open_image_rgb
from atlantis.errors import DataError
from atlantis.search.items import GalleryItem, Hit


@dataclass(frozen=True)
class QueryResult:
    """One query and its neighbours, nearest first."""

    path: Path
    label: str | None
    hits: list[Hit]

    def to_json(self) -> dict[str, Any]:
        return {
            "query": str(self.path),
            "label": self.label,
            "hits": [{"rank": h.rank, "id": h.id, "path": str(h.path), "label": h.label,
                      "distance": h.distance, "same_label": self.same(h)} for h in self.hits],
        }  # fmt: skip

    def same(self, hit: Hit) -> bool | None:
        """Whether ``hit`` has the query's label (None when either is unknown)."""
        if self.label is None or hit.label is None:
            return None
        return hit.label == self.label


def open_queries(paths: Sequence[Path]) -> list[Image.Image]:
    """Decode every query before embedding any: a bad one fails naming its file."""
    images = []
    for path in paths:
        if not Path(path).is_file():
            raise DataError("query image not found", path)
        try:
            images.append(open_image_rgb(path))
        except DataError as exc:
            raise DataError(f"not a readable query image ({exc})".replace(f"{path}: ", ""),
                            path) from None  # fmt: skip
    return images


def query_label(path: Path, items: Sequence[GalleryItem]) -> str | None:
    """The label of ``path``: its own gallery entry's, else its folder's if that is a class."""
    resolved = Path(path).resolve()
    for item in items:
        if Path(item.path) == resolved:
            return item.label
    labels = {item.label for item in items if item.label is not None}
    parent = resolved.parent.name
    return parent if parent in labels else None

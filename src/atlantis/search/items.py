"""What an index holds and what a search returns: gallery items and hits.

Both are small frozen dataclasses (the web page and the CLI only read them). Items are
stored one JSON object per line in ``items.jsonl``, row ``i`` matching vector ``i``; each
line also keeps the file's size, modification time and sha256, so that a re-index hashes
only the files that changed since the last build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from atlantis.errors import DataError
from atlantis.store.atomic import atomic_write_text


@dataclass(frozen=True)
class GalleryItem:
    """One gallery image: a stable id (relative path or record id), its file, its class."""

    id: str
    path: Path
    label: str | None


@dataclass(frozen=True)
class Hit:
    """One neighbour of a query: 1-based rank, the gallery item, its true distance."""

    rank: int
    id: str
    path: Path
    label: str | None
    distance: float


@dataclass(frozen=True)
class StoredItem:
    """A gallery item as indexed: the item plus the file stamp its vector was computed from."""

    item: GalleryItem
    sha256: str
    size: int
    mtime_ns: int


def write_items(path: Path, rows: Iterable[StoredItem]) -> None:
    """All rows at once, atomically (a reader never sees half a gallery)."""
    lines = []
    for row in rows:
        it = row.item
        lines.append(json.dumps({"id": it.id, "path": str(it.path), "label": it.label,
                                 "sha256": row.sha256, "size": row.size,
                                 "mtime_ns": row.mtime_ns}))  # fmt: skip
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_items(path: Path) -> list[StoredItem]:
    """Rows of ``items.jsonl``; a malformed line is a ``DataError`` naming file and line."""
    return list(_iter_items(path))


def _iter_items(path: Path) -> Iterator[StoredItem]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                item = GalleryItem(str(d["id"]), Path(d["path"]), d.get("label"))
                yield StoredItem(item, str(d["sha256"]), int(d["size"]), int(d["mtime_ns"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"malformed gallery item ({exc}); rebuild the index", path,
                                number) from None  # fmt: skip

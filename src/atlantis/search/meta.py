"""``index.json``: what an index folder holds and how its vectors must be compared.

The meta is written last, after every data file, and records each data file's sha256: a
build killed between two files leaves a folder whose meta does not match its files, and
``SearchIndex.load`` says so instead of pairing vectors with the wrong images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atlantis.errors import DataError
from atlantis.store.atomic import atomic_write_text

META_FILE = "index.json"
VECTORS_FILE = "vectors.npy"
ITEMS_FILE = "items.jsonl"
FAISS_FILE = "index.faiss"
CACHE_DIR = "cache"
FORMAT_VERSION = 1

Kind = Literal["flat", "ivf", "hnsw"]
Metric = Literal["cosine", "euclidean", "poincare"]


class IndexMeta(BaseModel):
    """The embedder an index was built with, its geometry, its structure and its quality."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    embedder_spec: str
    embedder_options: dict[str, Any] = Field(default_factory=dict)
    embedder_key: str
    distance: Metric
    curvature: float | None = None
    dim: int
    kind: Kind
    params: dict[str, Any] = Field(default_factory=dict)  # nlist/nprobe, M/efSearch, rerank
    size: int
    recall_at_10: float | None = None  # approximate vs exact on sampled gallery queries
    recall_queries: int | None = None
    built_at: str
    build_seconds: float = 0.0
    counts: dict[str, int] = Field(default_factory=dict)  # embedded, cached, skipped
    skipped: list[tuple[str, str]] = Field(default_factory=list)  # (path, reason)
    files: dict[str, str] = Field(default_factory=dict)  # data file -> sha256


def write_meta(folder: Path, meta: IndexMeta) -> None:
    atomic_write_text(folder / META_FILE, meta.model_dump_json(indent=2) + "\n")


def read_meta(folder: Path) -> IndexMeta:
    """The meta of an index folder, or a ``DataError`` saying how to make one."""
    path = folder / META_FILE
    if not path.is_file():
        raise DataError(
            f"not a search index (no {META_FILE}); build one with: atlantis index MODEL "
            f"--images FOLDER --out {folder}",
            folder,
        )
    try:
        return IndexMeta.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise DataError(f"unreadable index meta ({exc.error_count()} problems); rebuild the "
                        "index", path) from None  # fmt: skip

"""A built index, loaded from its folder: gallery items, vectors, and the searcher over them.

The index remembers the embedder that made its vectors (spec, options and key), because a
query is only comparable with the gallery when the same model embeds it. ``embedder()``
builds that model; ``check_embedder`` refuses any other, naming both, before a single
distance is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlantis.embed.base import Embedder
from atlantis.errors import ConfigError, DataError, InputError
from atlantis.search.items import GalleryItem, Hit, read_items
from atlantis.search.meta import FAISS_FILE, ITEMS_FILE, VECTORS_FILE, IndexMeta, read_meta
from atlantis.search.searchers import Searcher, make_searcher
from atlantis.store.atomic import file_sha256


class SearchIndex:
    """Search a gallery by vector or by image; ``SearchIndex.load(folder)`` opens one."""

    def __init__(self, folder: Path, meta: IndexMeta, items: list[GalleryItem],
                 vectors: np.ndarray, searcher: Searcher) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.meta = meta
        self.items = items
        self.vectors = vectors
        self._searcher = searcher
        self._embedders: dict[str, Embedder] = {}

    @classmethod
    def load(cls, folder: Path) -> SearchIndex:
        """Open an index folder; a folder whose files do not match its meta is an error."""
        folder = Path(folder).expanduser()
        meta = read_meta(folder)
        for name, digest in meta.files.items():
            path = folder / name
            if not path.is_file() or file_sha256(path) != digest:
                raise DataError(
                    f"index folder is incomplete or changed since it was built ({name} does "
                    "not match index.json; a build was probably interrupted): re-run "
                    "atlantis index with the same --out",
                    folder,
                )
        vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
        items = [row.item for row in read_items(folder / ITEMS_FILE)]
        if not (len(items) == len(vectors) == meta.size):
            raise DataError(f"index holds {len(items)} items and {len(vectors)} vectors, its "
                            f"meta says {meta.size}; rebuild it", folder)  # fmt: skip
        index: Any = None
        if FAISS_FILE in meta.files:
            import faiss

            index = faiss.read_index(str(folder / FAISS_FILE))
        searcher, _, _ = make_searcher(vectors, meta.distance, meta.kind, meta.curvature,
                                       index=index, params=meta.params)  # fmt: skip
        return cls(folder, meta, items, vectors, searcher)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        m = self.meta
        return f"SearchIndex({str(self.folder)!r}, {m.embedder_spec!r}, {m.kind}, size={m.size})"

    # ------------------------------------------------------------------ the model

    def embedder(self, device: str = "auto") -> Embedder:
        """The index's own model (from its meta), built once per device and kept."""
        if device not in self._embedders:
            from atlantis.embed.registry import create_embedder

            embedder = create_embedder(self.meta.embedder_spec, device=device,
                                       **self.meta.embedder_options)  # fmt: skip
            self.check_embedder(embedder)  # the model changed on disk since the build
            self._embedders[device] = embedder
        return self._embedders[device]

    def check_embedder(self, embedder: Embedder) -> None:
        """``ConfigError`` naming both models when ``embedder`` is not the index's model."""
        if embedder.key != self.meta.embedder_key:
            raise ConfigError(
                f"the index {self.folder} was built with {self.meta.embedder_spec} (key "
                f"{self.meta.embedder_key!r}), but the query model is {embedder!r} (key "
                f"{embedder.key!r}): vectors of different models cannot be compared. Search "
                "with the index's own model, or rebuild the index with this one (atlantis "
                "index MODEL ... --out INDEX)"
            )

    # ------------------------------------------------------------------ searching

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` nearest gallery items of each query vector (k is clamped to the size)."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.meta.dim:
            raise InputError(f"expected query vectors of shape [n, {self.meta.dim}], got "
                             f"{tuple(np.shape(queries))}", "queries")  # fmt: skip
        if not np.isfinite(q).all():
            raise InputError("query vectors contain NaN or inf", "queries")
        if isinstance(k, bool) or int(k) < 1:
            raise InputError(f"k must be >= 1, got {k!r}", "k")
        k = min(int(k), len(self.items))
        if len(q) == 0:
            return []
        idx, dist = self._searcher.search(np.ascontiguousarray(q), k)
        return [
            [self._hit(rank, int(i), float(d))
             for rank, (i, d) in enumerate(zip(row_i, row_d, strict=True), 1) if i >= 0]
            for row_i, row_d in zip(idx, dist, strict=True)
        ]  # fmt: skip

    def search_images(self, images: Sequence[Image.Image], k: int,
                      embedder: Embedder | None = None) -> list[list[Hit]]:  # fmt: skip
        """Embed ``images`` with the index's model (or ``embedder``, checked) and search."""
        model = self.embedder() if embedder is None else embedder
        self.check_embedder(model)
        if not images:
            return []
        return self.search_vectors(model.embed_images(list(images), progress=False), k)

    def _hit(self, rank: int, i: int, distance: float) -> Hit:
        item = self.items[i]
        return Hit(rank, item.id, item.path, item.label, distance)

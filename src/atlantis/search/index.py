"""The search index's public face: build one over a gallery, load it, search it.

``atlantis index`` / ``atlantis search`` and the web page use only these names::

    items, skipped = gallery_from_folder(Path("photos"))
    index = build_index("efficientnet-lite0", items, Path("idx"), skipped=skipped)
    hits = SearchIndex.load(Path("idx")).search_images([image], k=10)

The pieces live one concept per module: ``items`` (GalleryItem, Hit), ``gallery`` (where
items come from), ``meta`` (index.json), ``searchers`` (faiss and Poincaré search),
``build`` (embedding and writing), ``search_index`` (a loaded index).
"""

from __future__ import annotations

from atlantis.search.build import AUTO_APPROX_FROM, build_index
from atlantis.search.gallery import gallery_from_folder, gallery_from_run
from atlantis.search.items import GalleryItem, Hit
from atlantis.search.meta import IndexMeta
from atlantis.search.search_index import SearchIndex

__all__ = [
    "AUTO_APPROX_FROM",
    "GalleryItem",
    "Hit",
    "IndexMeta",
    "SearchIndex",
    "build_index",
    "gallery_from_folder",
    "gallery_from_run",
]

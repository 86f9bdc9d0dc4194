"""``build_index``: embed a gallery (cached, resumable, incremental) and index its vectors.

Why the index is rebuilt from a cache instead of being patched: each vector is stored in
the content-addressed embedding cache (``INDEX/cache``) the moment its batch is done, keyed
by the file's sha256. Re-running a build therefore embeds only images the cache has never
seen: the rest of a killed build, or the new files of a gallery that grew. Files that left
the gallery simply are not in the new item list. Re-indexing the vectors is cheap next to
embedding them (exact flat: a copy; HNSW/IVF: seconds per 100k).

Files are hashed once: ``items.jsonl`` keeps each file's (size, mtime, sha256), so a re-run
hashes only files that changed. Unreadable files are skipped and listed in the meta, never
fatal: a missing file, one PIL cannot decode to the end (checked before embedding, and only
for files that need a vector).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.data.images import check_decodes
from atlantis.embed.base import Embedder, progress_bar
from atlantis.embed.cache import EmbeddingCache, content_hash
from atlantis.errors import ConfigError, DataError
from atlantis.search.items import GalleryItem, StoredItem, read_items, write_items
from atlantis.search.meta import (
    CACHE_DIR,
    FAISS_FILE,
    ITEMS_FILE,
    META_FILE,
    VECTORS_FILE,
    IndexMeta,
    write_meta,
)
from atlantis.search.search_index import SearchIndex
from atlantis.search.searchers import KINDS, make_searcher, recall_at_10
from atlantis.store.atomic import atomic_save_npy, atomic_write_bytes, file_sha256

log = logging.getLogger(__name__)

#: ``kind="auto"`` picks an approximate index (HNSW) from this many gallery images on.
AUTO_APPROX_FROM = 50_000
AUTO_APPROX_KIND = "hnsw"
#: Sampled gallery vectors used as queries to measure an approximate index's recall@10.
RECALL_QUERIES = 1000


def build_index(
    embedder_spec: str,
    gallery: Sequence[GalleryItem],
    out: Path,
    *,
    kind: str = "auto",
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = True,
    embedder_options: dict[str, Any] | None = None,
    skipped: Sequence[tuple[Path, str]] = (),
    cache_dir: Path | None = None,
) -> SearchIndex:
    """Embed ``gallery`` with ``embedder_spec`` and write a search index to ``out``.

    ``embedder_options`` go to the embedder (e.g. ``image_size``) and are recorded, so the
    index rebuilds the same model for queries. ``skipped`` (files the caller already left
    out, e.g. from ``gallery_from_folder``) is recorded with the build's own skips.
    """
    from atlantis.embed.registry import create_embedder

    started = time.perf_counter()
    if kind not in ("auto", *KINDS):
        raise ConfigError(f"unknown index kind {kind!r}; valid: auto, {', '.join(KINDS)}")
    ids = [it.id for it in gallery]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"gallery ids must be unique; repeated: {', '.join(dupes)}")
    out = Path(out).expanduser()
    options = dict(embedder_options or {})
    common = {"device": device, **({"batch_size": batch_size} if batch_size else {})}
    embedder = create_embedder(embedder_spec, **common, **options)

    skips = [(str(p), reason) for p, reason in skipped]
    rows = _stamp_and_hash(gallery, _hash_memo(out / ITEMS_FILE), skips, progress)
    cache = EmbeddingCache(cache_dir or out / CACHE_DIR, embedder.key)
    vectors_by_hash, counts = _embed_missing(embedder, rows, cache, skips, progress)
    rows = [r for r in rows if r.sha256 in vectors_by_hash]
    if not rows:
        raise DataError("no readable image in the gallery; nothing to index" +
                        (f" ({len(skips)} skipped, first: {skips[0][0]})" if skips else ""),
                        out)  # fmt: skip
    vectors = np.stack([vectors_by_hash[r.sha256] for r in rows]).astype(np.float32)

    distance = str(getattr(embedder, "distance", "cosine"))
    curvature = float(embedder.curvature) if distance == "poincare" else None  # type: ignore[attr-defined]
    chosen = kind if kind != "auto" else (
        AUTO_APPROX_KIND if len(rows) >= AUTO_APPROX_FROM else "flat")  # fmt: skip
    searcher, faiss_index, params = make_searcher(vectors, distance, chosen, curvature)
    recall, recall_queries = None, None
    if chosen != "flat":
        exact, _, _ = make_searcher(vectors, distance, "flat", curvature)
        recall, recall_queries = recall_at_10(searcher, exact, vectors, RECALL_QUERIES)
        log.info("%s index: recall@10 %.4f vs exact on %d queries", chosen, recall,
                 recall_queries)  # fmt: skip

    files = _write_data(out, vectors, rows, faiss_index)
    meta = IndexMeta(
        embedder_spec=embedder_spec, embedder_options=options, embedder_key=embedder.key,
        distance=distance, curvature=curvature, dim=int(vectors.shape[1]), kind=chosen,  # type: ignore[arg-type]
        params=params, size=len(rows), recall_at_10=recall, recall_queries=recall_queries,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - started, 3),
        counts={**counts, "skipped": len(skips), "items": len(rows)}, skipped=skips, files=files,
    )  # fmt: skip
    write_meta(out, meta)
    return SearchIndex(out, meta, [r.item for r in rows], vectors, searcher)


def _hash_memo(items_file: Path) -> dict[tuple[str, int, int], str]:
    """(path, size, mtime_ns) -> sha256 from the previous build, if any (a pure speed-up)."""
    if not items_file.is_file():
        return {}
    try:
        return {(str(r.item.path), r.size, r.mtime_ns): r.sha256 for r in read_items(items_file)}
    except (DataError, OSError):
        return {}


def _stamp_and_hash(gallery: Sequence[GalleryItem], memo: dict[tuple[str, int, int], str],
                    skips: list[tuple[str, str]], progress: bool) -> list[StoredItem]:  # fmt: skip
    """Each readable item with its file stamp and content hash; unreadable ones to ``skips``."""
    rows: list[StoredItem] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("hashing", total=len(gallery))
        for item in gallery:
            path = Path(item.path)
            try:
                st = path.stat()
                digest = memo.get((str(path), st.st_size, st.st_mtime_ns)) or content_hash(path)
            except (OSError, DataError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                skips.append((str(path), f"cannot read file ({reason})".replace(f"{path}: ", "")))
            else:
                rows.append(StoredItem(item, digest, st.st_size, st.st_mtime_ns))
            bar.advance(task)
    return rows


def _embed_missing(embedder: Embedder, rows: list[StoredItem], cache: EmbeddingCache,
                   skips: list[tuple[str, str]], progress: bool,
                   ) -> tuple[dict[str, np.ndarray], dict[str, int]]:  # fmt: skip
    """Vectors of every distinct content: cached ones read, the others checked and embedded."""
    first: dict[str, Path] = {}
    for r in rows:
        first.setdefault(r.sha256, Path(r.item.path))
    vectors = cache.get_many(first)
    todo = [(h, p) for h, p in first.items() if h not in vectors]
    good: list[tuple[str, Path]] = []
    with progress_bar(progress and bool(todo)) as bar:
        task = bar.add_task("checking new images", total=len(todo))
        for h, p in todo:
            try:
                check_decodes(p)
                good.append((h, p))
            except Exception as exc:  # PIL's OSError, SyntaxError...; DataError for bombs
                skips.append((str(p), f"cannot decode image ({type(exc).__name__}: {exc})"))
            bar.advance(task)
    bad = {h for h, _ in todo} - {h for h, _ in good}
    for r in rows:  # copies of a bad file (same bytes, another name) are bad too
        if r.sha256 in bad and str(r.item.path) != str(first[r.sha256]):
            skips.append((str(r.item.path), "same bytes as an unreadable file"))
    computed = 0
    if good:
        array = embedder.embed_files([p for _, p in good], cache=cache, progress=progress)
        vectors.update(zip([h for h, _ in good], array, strict=True))
        computed = embedder.last_stats.computed
    return vectors, {"embedded": computed, "cached": len(first) - len(todo)}


def _write_data(out: Path, vectors: np.ndarray, rows: list[StoredItem],
                faiss_index: Any) -> dict[str, str]:  # fmt: skip
    """Write the data files atomically (meta comes after); returns their sha256 digests."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(out / VECTORS_FILE, vectors)
    write_items(out / ITEMS_FILE, rows)
    names = [VECTORS_FILE, ITEMS_FILE]
    if faiss_index is not None:
        import faiss

        atomic_write_bytes(out / FAISS_FILE, faiss.serialize_index(faiss_index).tobytes())
        names.append(FAISS_FILE)
    else:
        (out / FAISS_FILE).unlink(missing_ok=True)
    assert META_FILE not in names
    return {name: file_sha256(out / name) for name in names}

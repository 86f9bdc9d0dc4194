"""Benchmark the search index at 100k x 128: build time, query latency, recall@10.

Run:  .venv/bin/python benchmarks/search.py [--n 100000] [--dim 128] [--queries 200]
                                           [--page-images 300] [--page-size 224]

Data: synthetic, seeded, clustered (1,000 unit class centres plus Gaussian noise, rows
normalised): the shape of a retrieval embedding set. For the Poincaré rows the same
directions are scaled into the ball of curvature c = 0.1 at random radii.

Each row is one (geometry, kind) through the package's own code: ``make_searcher`` (what
``build_index`` calls) builds the structure, ``recall_at_10`` measures an approximate
index against exact search on 1,000 sampled gallery vectors (what the build stores), and
latency is ``SearchIndex.search_vectors`` (what ``atlantis search`` and the web page call,
including the Hit objects): single queries one at a time (p50 / p95 over ``--queries``
queries not in the gallery) and one batch of 1,000 queries (throughput).

The page (``--page-images``, 0 skips it): a gallery of JPEG files indexed with the offline
EfficientNet-Lite0 at ``--page-size`` px (a real CNN forward pass per query, as a trained
model's), then ``POST /api/search`` of the ``atlantis serve`` app (in-process ASGI client:
upload, multipart parsing, decoding, embedding, search, JSON) timed per query, next to the
same embedding + search called directly: the page's own overhead. Target: under a second
per query including the embedding.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from atlantis.search.items import GalleryItem
from atlantis.search.meta import IndexMeta
from atlantis.search.search_index import SearchIndex
from atlantis.search.searchers import make_searcher, recall_at_10

CURVATURE = 0.1
ROWS = (("cosine", "flat"), ("cosine", "hnsw"), ("cosine", "ivf"),
        ("poincare", "flat"), ("poincare", "hnsw"), ("poincare", "ivf"))  # fmt: skip


def clustered(n: int, dim: int, seed: int, classes: int = 1000, noise: float = 1.0) -> np.ndarray:
    """Unit class centres plus noise, rows normalised (float32, C-contiguous)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(0, classes, n)]
    x = x + noise * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), np.float32)


def into_ball(x: np.ndarray, seed: int) -> np.ndarray:
    """Directions of ``x`` at random radii inside the Poincaré ball of curvature c."""
    radius = np.random.default_rng(seed).uniform(0.2, 0.9, (len(x), 1)) / np.sqrt(CURVATURE)
    return np.ascontiguousarray(x * radius, np.float32)


def bench(metric: str, kind: str, gallery: np.ndarray, queries: np.ndarray,
          batch: np.ndarray) -> dict[str, float | str | None]:  # fmt: skip
    start = time.perf_counter()
    searcher, _, params = make_searcher(gallery, metric, kind, CURVATURE)
    build_s = time.perf_counter() - start
    recall = None
    if kind != "flat":
        exact, _, _ = make_searcher(gallery, metric, "flat", CURVATURE)
        recall, _ = recall_at_10(searcher, exact, gallery)
    meta = IndexMeta(embedder_spec="bench", embedder_key="bench", distance=metric,  # type: ignore[arg-type]
                     curvature=CURVATURE if metric == "poincare" else None, dim=gallery.shape[1],
                     kind=kind, params=params, size=len(gallery), built_at="now")  # type: ignore[arg-type]  # fmt: skip
    items = [GalleryItem(str(i), Path(f"{i}.png"), None) for i in range(len(gallery))]
    index = SearchIndex(Path("."), meta, items, gallery, searcher)
    index.search_vectors(queries[:5], 10)  # warm-up
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search_vectors(q[None], 10)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    index.search_vectors(batch, 10)
    batch_s = time.perf_counter() - t
    ms = np.asarray(times) * 1e3
    return {"geometry": metric, "kind": kind, "params": ", ".join(f"{k}={v}" for k, v in params.items()),
            "build_s": build_s, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "batch_qps": len(batch) / batch_s,
            "recall": recall}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=200, help="single queries timed")
    p.add_argument("--batch", type=int, default=1000, help="queries in the batch")
    p.add_argument("--threads", type=int, default=None, help="faiss/BLAS threads (default all)")
    p.add_argument(
        "--page-images", type=int, default=300, help="gallery of the page check (0: skip)"
    )
    p.add_argument("--page-size", type=int, default=224, help="image size of the page's model")
    p.add_argument("--page-queries", type=int, default=20, help="queries timed on the page")
    args = p.parse_args()
    if args.threads:
        import faiss
        from threadpoolctl import threadpool_limits

        faiss.omp_set_num_threads(args.threads)
        threadpool_limits(args.threads)
    data = clustered(args.n + args.queries + args.batch, args.dim, seed=0)
    gallery, rest = data[: args.n], data[args.n :]
    queries, batch = rest[: args.queries], rest[args.queries :]
    ball = into_ball(data, seed=1)
    ball_g, ball_q, ball_b = (
        ball[: args.n],
        ball[args.n : args.n + args.queries],
        ball[args.n + args.queries :],
    )
    table = Table(title=f"search index: {args.n:,} x {args.dim}, k=10")
    for col in ("geometry", "kind", "params", "build s", "single p50 ms", "single p95 ms",
                "batch q/s", "recall@10"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("geometry", "kind", "params") else "right")
    total = time.perf_counter()
    for metric, kind in ROWS:
        g, q, b = (ball_g, ball_q, ball_b) if metric == "poincare" else (gallery, queries, batch)
        r = bench(metric, kind, g, q, b)
        table.add_row(str(r["geometry"]), str(r["kind"]), str(r["params"]), f"{r['build_s']:.2f}",
                      f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['batch_qps']:,.0f}",
                      "exact" if r["recall"] is None else f"{r['recall']:.3f}")  # fmt: skip
        print(f"done {metric}/{kind} ({time.perf_counter() - total:.0f} s)", flush=True)
    Console(width=160).print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"total {time.perf_counter() - total:.0f} s on {os.cpu_count()} CPUs "
          f"(load average at the end: {load:.2f})")  # fmt: skip
    if args.page_images:
        page_latency(args.page_images, args.page_size, args.page_queries)


def page_latency(images: int, size: int, queries: int) -> None:
    """Time the search page end to end against calling the model and the index directly."""
    import io
    import tempfile

    from fastapi.testclient import TestClient
    from PIL import Image

    from atlantis.search.app import SearchService, create_app
    from atlantis.search.index import build_index, gallery_from_folder

    rng = np.random.default_rng(0)

    def picture() -> Image.Image:
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        return Image.fromarray(np.kron(blocks, np.ones((64, 64, 1), np.uint8)))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "gallery"
        for i in range(images):
            (root / f"class{i % 10}").mkdir(parents=True, exist_ok=True)
            picture().save(root / f"class{i % 10}" / f"{i}.jpg", quality=90)
        items, _ = gallery_from_folder(root)
        start = time.perf_counter()
        index = build_index("efficientnet-lite0", items, Path(tmp) / "index", progress=False,
                            embedder_options={"image_size": size})  # fmt: skip
        build_s = time.perf_counter() - start
        service = SearchService(index, k=10)
        client = TestClient(create_app(service))
        uploads = []
        for _ in range(queries + 1):
            buf = io.BytesIO()
            picture().save(buf, format="JPEG", quality=90)
            uploads.append(buf.getvalue())
        page, direct = [], []
        for n, data in enumerate(uploads):
            t0 = time.perf_counter()
            r = client.post("/api/search", files={"image": ("q.jpg", data, "image/jpeg")})
            t1 = time.perf_counter()
            assert r.status_code == 200, r.text
            with Image.open(io.BytesIO(data)) as im:
                service.search(im.convert("RGB"))
            t2 = time.perf_counter()
            if n:  # the first query loads the model
                page.append(1000 * (t1 - t0))
                direct.append(1000 * (t2 - t1))
    table = Table(title=f"search page: {images} JPEGs indexed with efficientnet-lite0 at {size} px "
                        f"(built in {build_s:.1f} s), {queries} queries")  # fmt: skip
    for col in ("path", "p50 ms", "p95 ms"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, ms in (("POST /api/search (page)", page), ("embed + search (direct)", direct)):
        table.add_row(name, f"{np.percentile(ms, 50):.0f}", f"{np.percentile(ms, 95):.0f}")
    Console(width=160).print(table)
    overhead = np.percentile(page, 50) - np.percentile(direct, 50)
    print(f"page overhead over the direct call: {overhead:+.0f} ms per query (p50)")


if __name__ == "__main__":
    main()

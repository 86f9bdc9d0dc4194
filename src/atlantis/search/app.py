"""The local search page of ``atlantis serve INDEX``: drop or pick an image, see its neighbours.

A FastAPI app (the ``serve`` extra: fastapi, uvicorn, python-multipart) over one
:class:`~atlantis.search.index.SearchIndex`. Routes:

* ``GET /``: the page: the index's model and size, a drop zone / file picker (posts to
  ``/search``), and a row of gallery images to pick; ``GET /?pick=<n>`` shows the
  neighbours of gallery image ``n`` (a results page any browser, or a screenshot, can load);
* ``POST /search`` (multipart field ``image``): the results page for an uploaded image;
* ``POST /api/search?k=10``: the same as JSON (hits with rank, id, label, distance, thumbnail
  URL; the embed and search times);
* ``GET /gallery/<n>``: a JPEG thumbnail of gallery image ``n``. Only the index's own items
  are served, by position, so no request can name a file on the machine.

Bad requests get a 4xx with a sentence saying what was wrong and what is accepted: a file
over the upload limit (413, checked on the declared length and again while reading, so a
lying client cannot stream more), a file that is not an image Pillow can read (415), a
request without a file (400), a gallery number out of range (404).

The model loads once, on the first query (a lock keeps two first queries from loading it
twice), and its key is checked against the index's: an index is only ever searched with
the model that built it. FastAPI runs the sync handlers in its thread pool, so a slow
embedding does not block the page for others.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from atlantis.embed.base import Embedder, import_optional
from atlantis.embed.preprocess import to_rgb
from atlantis.search.index import Hit, SearchIndex
from atlantis.search.page import jpeg, render_page

# This module is the page: it needs the serve extra, and says so on import. FastAPI reads
# the route signatures' annotations, so its types must be importable from here by name.
import_optional("fastapi", "fastapi", "serve", "atlantis serve")
import_optional("python_multipart", "python-multipart", "serve", "atlantis serve (uploads)")
from fastapi import FastAPI, File, Request, UploadFile  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402

#: Default upload limit: a phone photo is 3-8 MB; larger files are refused, not streamed.
MAX_UPLOAD_MB = 10.0


class PageError(Exception):
    """A request the page refuses: an HTTP status and a sentence for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SearchService:
    """The index, its model (loaded on first use) and thumbnails: what the routes share."""

    def __init__(self, index: SearchIndex, *, k: int = 10, embedder: Embedder | None = None,
                 device: str = "auto", max_upload_mb: float = MAX_UPLOAD_MB) -> None:  # fmt: skip
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if max_upload_mb <= 0:
            raise ValueError(f"max_upload_mb must be > 0, got {max_upload_mb}")
        self.index = index
        self.k = k
        self.device = device
        self.max_upload_mb = float(max_upload_mb)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        if embedder is not None:
            index.check_embedder(embedder)
        self._embedder = embedder
        self._lock = threading.Lock()
        self._thumbs: dict[int, bytes] = {}
        self._positions = {item.id: i for i, item in enumerate(index.items)}

    @property
    def embedder(self) -> Embedder:
        """The index's own model, loaded by the first query (its key checked then)."""
        with self._lock:
            if self._embedder is None:
                embedder = self.index.embedder(self.device)
                self.index.check_embedder(embedder)
                self._embedder = embedder.load()
            return self._embedder

    def search(
        self, image: Image.Image, k: int | None = None
    ) -> tuple[list[Hit], dict[str, float]]:
        """Neighbours of one image, and how long embedding and searching took (ms)."""
        k = min(k or self.k, len(self.index.items))
        embedder = self.embedder
        t0 = time.perf_counter()
        vector = embedder.embed_images([image], progress=False)
        t1 = time.perf_counter()
        hits = self.index.search_vectors(vector, k)[0]
        t2 = time.perf_counter()
        return hits, {"embed_ms": 1000 * (t1 - t0), "search_ms": 1000 * (t2 - t1)}

    def read_upload(self, data: bytes, name: str) -> Image.Image:
        """The uploaded bytes as an RGB image, or a PageError saying why not."""
        if len(data) > self.max_upload_bytes:
            raise self.too_large(len(data))
        if not data:
            raise PageError(400, f"the uploaded file {name!r} is empty; choose an image file")
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise PageError(
                415, f"the uploaded file {name!r} is not an image this page can read "
                f"({type(exc).__name__}); upload a JPEG, PNG, WebP, GIF or BMP file"
            ) from None  # fmt: skip

    def too_large(self, size: int) -> PageError:
        limit = self.max_upload_mb
        return PageError(413, f"the upload is {size / 1024 / 1024:.1f} MB; this page takes "
                              f"images up to {limit:g} MB (atlantis serve --max-upload-mb)")  # fmt: skip

    def item_image(self, n: int) -> Image.Image:
        item = self._item(n)
        try:
            with Image.open(item.path) as im:
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
        except OSError as exc:
            raise PageError(404, f"gallery image {n} ({item.path}) cannot be read: {exc}") from None

    def thumbnail(self, n: int) -> bytes:
        """A JPEG thumbnail of gallery image ``n`` (made once, then kept in memory)."""
        if n not in self._thumbs:
            self._thumbs[n] = jpeg(self.item_image(n))
        return self._thumbs[n]

    def _item(self, n: int) -> Any:
        if not 0 <= n < len(self.index.items):
            raise PageError(404, f"no gallery image {n}: the index holds images 0 to "
                                 f"{len(self.index.items) - 1}")  # fmt: skip
        return self.index.items[n]

    def position(self, hit: Hit) -> int:
        """The gallery position of a hit (what thumbnail and pick URLs name)."""
        return self._positions[hit.id]


def create_app(service: SearchService) -> FastAPI:
    """The FastAPI app serving ``service``."""
    app = FastAPI(title="atlantis search", docs_url=None, redoc_url=None)

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return HTMLResponse(
            render_page(service.index, service.position, error=exc.message), status_code=exc.status
        )

    async def read(request: Request, image: UploadFile | None) -> tuple[bytes, str]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > service.max_upload_bytes + 65536:
            raise service.too_large(int(declared))
        if image is None or not image.filename:
            raise PageError(400, "no image in the request: send it as the multipart form "
                                 "field 'image'")  # fmt: skip
        data = await image.read(service.max_upload_bytes + 1)
        return data, image.filename

    @app.get("/", response_class=HTMLResponse)
    def home(pick: int | None = None, k: int | None = None) -> str:
        if pick is None:
            return render_page(service.index, service.position)
        query = service.item_image(pick)
        hits, times = service.search(query, k)
        return render_page(service.index, service.position, query=query, query_name=f"gallery image {pick}",
                           query_label=service.index.items[pick].label, hits=hits,
                           times=times)  # fmt: skip

    @app.post("/search", response_class=HTMLResponse)
    async def search_page(
        request: Request, image: Annotated[UploadFile | None, File()] = None
    ) -> str:
        data, name = await read(request, image)
        query = service.read_upload(data, name)
        hits, times = service.search(query)
        return render_page(
            service.index, service.position, query=query, query_name=name, hits=hits, times=times
        )

    @app.post("/api/search")
    async def search_api(request: Request, image: Annotated[UploadFile | None, File()] = None,
                         k: int | None = None) -> dict[str, Any]:  # fmt: skip
        data, name = await read(request, image)
        query = service.read_upload(data, name)
        hits, times = service.search(query, k)
        return {"query": name, **times,
                "hits": [{"rank": h.rank, "id": h.id, "label": h.label,
                          "distance": h.distance, "path": str(h.path),
                          "thumbnail": f"/gallery/{service.position(h)}"} for h in hits]}  # fmt: skip

    @app.get("/gallery/{n}")
    def gallery(n: int) -> Response:
        return Response(service.thumbnail(n), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=3600"})  # fmt: skip

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "images": len(service.index.items)}

    return app


def serve(index_folder: Path, *, host: str = "127.0.0.1", port: int = 8000, k: int = 10,
          device: str = "auto", max_upload_mb: float = MAX_UPLOAD_MB) -> None:  # fmt: skip
    """Load the index and run the page with uvicorn until interrupted."""
    uvicorn = import_optional("uvicorn", "uvicorn", "serve", "atlantis serve")
    service = SearchService(SearchIndex.load(index_folder), k=k, device=device,
                            max_upload_mb=max_upload_mb)  # fmt: skip
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")

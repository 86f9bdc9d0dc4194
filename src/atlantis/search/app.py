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

import base64
import html
import io
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from atlantis.embed.base import Embedder, import_optional
from atlantis.embed.preprocess import to_rgb
from atlantis.search.index import Hit, SearchIndex

# This module is the page: it needs the serve extra, and says so on import. FastAPI reads
# the route signatures' annotations, so its types must be importable from here by name.
import_optional("fastapi", "fastapi", "serve", "atlantis serve")
import_optional("python_multipart", "python-multipart", "serve", "atlantis serve (uploads)")
from fastapi import FastAPI, File, Request, UploadFile  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402

#: Default upload limit: a phone photo is 3-8 MB; larger files are refused, not streamed.
MAX_UPLOAD_MB = 10.0
THUMB = 160  # thumbnail side in pixels
SAMPLES = 12  # gallery images offered to pick


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


def jpeg(image: Image.Image, side: int = THUMB) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def create_app(service: SearchService) -> FastAPI:
    """The FastAPI app serving ``service``."""
    app = FastAPI(title="atlantis search", docs_url=None, redoc_url=None)

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return HTMLResponse(render_page(service, error=exc.message), status_code=exc.status)

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
            return render_page(service)
        query = service.item_image(pick)
        hits, times = service.search(query, k)
        return render_page(service, query=query, query_name=f"gallery image {pick}",
                           query_label=service.index.items[pick].label, hits=hits,
                           times=times)  # fmt: skip

    @app.post("/search", response_class=HTMLResponse)
    async def search_page(
        request: Request, image: Annotated[UploadFile | None, File()] = None
    ) -> str:
        data, name = await read(request, image)
        query = service.read_upload(data, name)
        hits, times = service.search(query)
        return render_page(service, query=query, query_name=name, hits=hits, times=times)

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


# ------------------------------------------------------------------ the page

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;
background:#fbfbfd}h1{font-size:22px;margin:0 0 4px}.meta{color:#5b6475;margin-bottom:16px}
.drop{border:2px dashed #8a94a6;border-radius:10px;padding:22px;text-align:center;
background:#fff}.drop.over{background:#eef4ff;border-color:#3b6fd8}
.error{background:#fde8e8;border:1px solid #d33;border-radius:6px;padding:8px 12px;margin:12px 0}
.grid{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}.card{background:#fff;width:168px;
border:1px solid #dde1ea;border-radius:8px;padding:4px;text-align:center;font-size:12px}
.card img{width:160px;height:160px;object-fit:contain;background:#f3f4f7;display:block}
.card.same{border:2px solid #17803d}.query{display:flex;gap:16px;align-items:center;margin:16px 0}
.query img{width:200px;height:200px;object-fit:contain;background:#f3f4f7;border-radius:8px}
a{color:#2b59c3;text-decoration:none}small{color:#5b6475}
"""

_SCRIPT = """
const zone=document.getElementById('drop'),form=document.getElementById('upload'),
input=document.getElementById('file');
['dragenter','dragover'].forEach(e=>zone.addEventListener(e,ev=>{ev.preventDefault();
zone.classList.add('over')}));['dragleave','drop'].forEach(e=>zone.addEventListener(e,ev=>{
ev.preventDefault();zone.classList.remove('over')}));
zone.addEventListener('drop',ev=>{if(ev.dataTransfer.files.length){input.files=ev.dataTransfer.files;
form.submit()}});input.addEventListener('change',()=>{if(input.files.length)form.submit()});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _data_url(image: Image.Image) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg(image, 200)).decode("ascii")


def render_page(service: SearchService, *, query: Image.Image | None = None,
                query_name: str = "", query_label: str | None = None,
                hits: Sequence[Hit] = (), times: dict[str, float] | None = None,
                error: str | None = None) -> str:  # fmt: skip
    """The whole page: header, drop zone, an error or the results, the gallery to pick from."""
    index = service.index
    meta = index.meta
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>atlantis search</title><style>{_CSS}</style></head><body>",
        "<h1>atlantis image search</h1>",
        f"<div class=meta>{len(index.items)} images &middot; model <code>"
        f"{_e(getattr(meta, 'embedder_spec', ''))}</code> &middot; "
        f"{_e(getattr(meta, 'distance', ''))} distance &middot; {_e(getattr(meta, 'kind', ''))}"
        " index</div>",
        "<form id=upload method=post action=/search enctype=multipart/form-data>",
        "<div id=drop class=drop>Drop an image here, or <label><u>choose a file</u>",
        "<input id=file type=file name=image accept='image/*' hidden></label> ",
        "<noscript><button>search</button></noscript></div></form>",
    ]
    if error:
        parts.append(f"<div class=error role=alert>{_e(error)}</div>")
    if query is not None:
        label = f"<br>label <b>{_e(query_label)}</b>" if query_label else ""
        took = ""
        if times:
            took = (f"<br><small>embedded in {times['embed_ms']:.0f} ms, searched in "
                    f"{times['search_ms']:.1f} ms</small>")  # fmt: skip
        parts.append(f"<div class=query><img alt='query' src='{_data_url(query)}'><div>"
                     f"<b>{_e(query_name)}</b>{label}{took}</div></div>")  # fmt: skip
        parts.append(f"<h2>{len(hits)} nearest</h2><div class=grid>")
        for h in hits:
            same = " same" if query_label is not None and h.label == query_label else ""
            n = service.position(h)
            parts.append(
                f"<div class='card{same}'><a href='/?pick={n}'><img alt='{_e(h.label or h.id)}'"
                f" src='/gallery/{n}'></a>#{h.rank} {_e(h.label or '')}<br>"
                f"<small>{max(h.distance, 0.0):.4f}</small></div>"
            )
        parts.append("</div>")
    picks = _sample_positions(len(index.items), SAMPLES)
    parts.append("<h2>or pick one of the gallery</h2><div class=grid>")
    for n in picks:
        item = index.items[n]
        parts.append(f"<div class=card><a href='/?pick={n}'><img alt='{_e(item.label or item.id)}'"
                     f" src='/gallery/{n}'></a>{_e(item.label or '')}</div>")  # fmt: skip
    parts.append(f"</div><script>{_SCRIPT}</script></body></html>")
    return "".join(parts)


def _sample_positions(size: int, count: int) -> list[int]:
    """Evenly spread gallery positions (the same on every load: a stable page)."""
    if size <= count:
        return list(range(size))
    return [round(i * (size - 1) / (count - 1)) for i in range(count)]


def serve(index_folder: Path, *, host: str = "127.0.0.1", port: int = 8000, k: int = 10,
          device: str = "auto", max_upload_mb: float = MAX_UPLOAD_MB) -> None:  # fmt: skip
    """Load the index and run the page with uvicorn until interrupted."""
    uvicorn = import_optional("uvicorn", "uvicorn", "serve", "atlantis serve")
    service = SearchService(SearchIndex.load(index_folder), k=k, device=device,
                            max_upload_mb=max_upload_mb)  # fmt: skip
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")

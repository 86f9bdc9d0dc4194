"""The search page's HTML: one server-rendered page, no framework, every string escaped.

Kept apart from the routes (``app``) so the page can be rendered and read in a test
without a server. The drop zone posts the file with a tiny script; without JavaScript the
form's button does the same. Thumbnails come from ``/gallery/<n>``; the query is inlined.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence

from PIL import Image

from atlantis.search.index import Hit, SearchIndex

THUMB = 160  # thumbnail side in pixels
SAMPLES = 12  # gallery images offered to pick


def jpeg(image: Image.Image, side: int = THUMB) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((side, side), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


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


def render_page(index: SearchIndex, position: Callable[[Hit], int], *, query: Image.Image | None = None,
                query_name: str = "", query_label: str | None = None,
                hits: Sequence[Hit] = (), times: dict[str, float] | None = None,
                error: str | None = None) -> str:  # fmt: skip
    """The whole page: header, drop zone, an error or the results, the gallery to pick from."""
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
            n = position(h)
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

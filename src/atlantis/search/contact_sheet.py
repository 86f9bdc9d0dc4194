"""A self-contained HTML contact sheet of search results: one row per query.

Everything is inline (JPEG thumbnails as base64 data URIs, one small style sheet), so the
file can be mailed or attached to an issue and still show every image. Hits that share the
query's known label get a green frame and a tick.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from atlantis.embed.preprocess import open_image_rgb
from atlantis.search.queries import QueryResult

THUMB = 160

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.row{display:flex;gap:.6em;align-items:flex-start;margin-bottom:1.4em;flex-wrap:wrap}
figure{margin:0;width:%(t)dpx;font-size:12px;text-align:center}
img{width:%(t)dpx;height:%(t)dpx;object-fit:contain;background:#f3f3f3;border:3px solid #ddd}
.query img{border-color:#36c}
.match img{border-color:#2a2}
.match figcaption b::after{content:" \\2713";color:#2a2}
figcaption{overflow-wrap:anywhere}
.missing{width:%(t)dpx;height:%(t)dpx;display:flex;align-items:center;justify-content:center;
background:#fee;border:3px solid #ddd}
""" % {"t": THUMB}  # noqa: UP031 - the CSS braces make f-strings unreadable


def thumbnail_uri(image: Image.Image, size: int = THUMB) -> str:
    """A JPEG thumbnail of ``image`` as a ``data:`` URI."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(uri: str | None, title: str, lines: Sequence[str], css: str = "") -> str:
    pic = (f'<img src="{uri}" alt="{html.escape(title)}">' if uri
           else '<div class="missing">unreadable</div>')  # fmt: skip
    text = "<br>".join(html.escape(x) for x in lines)
    return (f'<figure class="{css}" title="{html.escape(title)}">{pic}'
            f"<figcaption>{text}</figcaption></figure>")  # fmt: skip


def _file_uri(path: Path) -> str | None:
    try:
        return thumbnail_uri(open_image_rgb(path))
    except Exception:  # the gallery file moved or broke since indexing: show a placeholder
        return None


def contact_sheet(results: Sequence[QueryResult], queries: Sequence[Image.Image],
                  title: str = "atlantis search") -> str:  # fmt: skip
    """The HTML page: each query (blue frame) followed by its hits."""
    rows = []
    for result, image in zip(results, queries, strict=True):
        cells = [_figure(thumbnail_uri(image), str(result.path),
                         ["query", result.path.name, f"label: {result.label or '?'}"], "query")]  # fmt: skip
        for hit in result.hits:
            label = f"<b>{html.escape(hit.label)}</b>" if hit.label else "?"
            css = "match" if result.same(hit) else ""
            fig = _figure(_file_uri(hit.path), str(hit.path),
                          [f"#{hit.rank}  d={hit.distance:.4f}", hit.path.name], css)  # fmt: skip
            cells.append(fig.replace("</figcaption>", f"<br>{label}</figcaption>"))
        rows.append(f'<div class="row">{"".join(cells)}</div>')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{''.join(rows)}</body></html>\n")  # fmt: skip

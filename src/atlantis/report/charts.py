"""The run report's figures: SVG bars, heatmaps and deltas, and embedded review images.

Same approach as the insight report (``atlantis.insight.report``, whose escaping, colour and
layout helpers these reuse): precomputed SVG with exact numbers in each element's
``<title>`` tooltip, no JavaScript, and a scrolling box past a few dozen classes. The SVG
carries no ``xmlns`` attribute (inline SVG in HTML does not need one), so the page holds no
URL at all.

The charts answer "what did augmentation change?": the bar chart puts every arm's bar (real
part plus kept synthetic part) under the real one, and the heatmaps share one colour scale so
the real and the augmented class x domain table can be compared cell by cell. The filter's
review images are embedded as ``data:`` URIs (large files as small thumbnails), so the page
stays one file; a missing image is skipped, since a report of a cleaned-up run is still useful.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from atlantis.insight.report import _CHAR_W, _e, _mix, _scroll, _short
from atlantis.report.schema import FilterSummary, GridImages, ReportData

__all__ = [
    "ARM_COLOURS",
    "REAL",
    "REAL_PART",
    "class_bars",
    "data_uri",
    "distribution_charts",
    "diverging_bars",
    "heatmap",
    "line_chart",
    "review_images",
]

REAL, REAL_PART = "#4c78a8", "#a9c4e0"  # the real data; the real part of an arm's bar
ARM_COLOURS = ("#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b", "#9d755d")
GAIN, LOSS, SCARCE, ADDED, LOW = "#54a24b", "#e45756", "#d62728", "#f58518", "#e45756"
WIDTH = 960
MAX_EMBED = 1 << 20  # opaque PNGs up to this size are embedded as they are; others re-encoded
THUMB = 96


def _svg(width: float, height: float, label: str, font: int) -> str:
    return (
        f'<svg width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{_e(label)}" '
        f'font-size="{font}">'
    )


def _label_width(names: Sequence[str], font: int) -> int:
    return min(
        300, int(max((len(_short(n, 40)) for n in names), default=4) * _CHAR_W * font / 11) + 12
    )


def _legend(items: Sequence[tuple[str, str]], extra: str = "") -> str:
    spans = "".join(f'<span style="background:{c}"></span>{_e(t)}' for c, t in items)
    return f'<p class="legend">{spans}{extra}</p>'


def class_bars(
    real: Mapping[str, int],
    arms: Sequence[tuple[str, Mapping[str, int], Mapping[str, int]]],
    under: frozenset[str] | set[str] = frozenset(),
) -> str:
    """Per class, a bar for the real images and one per arm ``(name, totals, synthetic)``.

    Classes are sorted by real count, smallest first: those are what augmentation targets.
    An arm's bar is its real part (light) plus its kept synthetic part (the arm's colour).
    """
    classes = list(dict.fromkeys([*real, *(c for _, totals, _ in arms for c in totals)]))
    if not classes:
        return "<p class='muted'>No class counts.</p>"
    classes.sort(key=lambda c: (real.get(c, 0), c))
    colours = {name: ARM_COLOURS[i % len(ARM_COLOURS)] for i, (name, _, _) in enumerate(arms)}
    many = len(classes) * (1 + len(arms)) > 180
    bar_h, font, gap = (6, 10, 5) if many else (10, 12, 8)
    group = bar_h * (1 + len(arms)) + gap
    label_w = _label_width(classes, font)
    bar_w, top = WIDTH - label_w - 70, 6
    peak = max([*real.values(), *(v for _, t, _ in arms for v in t.values())], default=0) or 1
    height = top + group * len(classes)
    out = [_svg(WIDTH, height, "images per class before and after augmentation", font)]
    for i, cls in enumerate(classes):
        y0 = top + i * group
        ymid = y0 + (group - gap) / 2 + font * 0.35
        fill = LOW if cls in under else "#1d2433"
        out.append(
            f'<text x="{label_w - 6}" y="{ymid:.1f}" text-anchor="end" fill="{fill}">'
            f"<title>{_e(cls)}</title>{_e(_short(cls, 40))}</text>"
        )
        n_real = int(real.get(cls, 0))
        bars = [("real", n_real, [(n_real, REAL)])]
        for name, totals, synthetic in arms:
            total, syn = int(totals.get(cls, 0)), int(synthetic.get(cls, 0))
            bars.append((name, total, [(total - syn, REAL_PART), (syn, colours[name])]))
        for j, (name, total, parts) in enumerate(bars):
            y, x = y0 + j * bar_h, float(label_w)
            syn = total - parts[0][0]
            tip = f"{cls} \u2014 {name}: {total:,} images" + (
                f" ({parts[0][0]:,} real + {syn:,} kept synthetic)" if j else ""
            )
            out.append(f"<g><title>{_e(tip)}</title>")
            for count, colour in parts:
                w = bar_w * max(count, 0) / peak
                if w > 0:
                    out.append(
                        f'<rect x="{x:.1f}" y="{y + 0.5:.1f}" width="{w:.1f}" '
                        f'height="{bar_h - 1}" fill="{colour}"/>'
                    )
                x += w
            out.append(
                f'<text x="{x + 3:.1f}" y="{y + bar_h - 1:.1f}" font-size="{bar_h + 1}">'
                f"{total:,}</text></g>"
            )
    out.append("</svg>")
    legend = _legend(
        [(REAL, "real"), (REAL_PART, "real part of an arm's bar")]
        + [(c, f"{n}: kept synthetic") for n, c in colours.items()],
        f" &nbsp; bars per class: real, then {_e(', '.join(colours)) or 'no arm'}",
    )
    return legend + _scroll("".join(out), len(classes) * group > 620)


def heatmap(
    table: Mapping[str, Mapping[str, int]],
    classes: Sequence[str],
    domains: Sequence[str],
    *,
    peak: int,
    scarce: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset(),
    base: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """Class x domain counts on a shared scale (``peak``); scarce cells outlined in red.

    With ``base`` (the real table), cells that grew get an orange corner and a tooltip that
    splits the count into real and added images.
    """
    if not classes or not domains:
        return "<p class='muted'>No class x domain counts.</p>"
    row_h, font = (18, 12) if len(classes) <= 60 else (13, 10)
    label_w = _label_width(classes, font)
    cell_w = max(44, min(110, (WIDTH - label_w) // max(1, len(domains))))
    longest = max(len(_short(d, 24)) for d in domains)
    rotate = longest * _CHAR_W > cell_w - 6  # long domain names: slanted headers
    head = int(longest * _CHAR_W * 0.65) + 16 if rotate else 20
    tail = int(longest * _CHAR_W * 0.77) if rotate else 0
    width = label_w + cell_w * len(domains) + 4 + tail
    out = [_svg(width, head + row_h * len(classes) + 4, "class by domain counts", font)]
    for j, d in enumerate(domains):
        x, y = label_w + j * cell_w + cell_w / 2, head - 6
        pos = (
            f'x="{x - 4:.1f}" y="{y}" text-anchor="start" transform="rotate(-40 {x - 4:.1f} {y})"'
            if rotate
            else f'x="{x:.1f}" y="{y}" text-anchor="middle"'
        )
        out.append(f"<text {pos}><title>{_e(d)}</title>{_e(_short(d, 24))}</text>")
    peak = peak or 1
    for i, cls in enumerate(classes):
        y = head + i * row_h
        out.append(
            f'<text x="{label_w - 6}" y="{y + row_h * 0.72:.1f}" text-anchor="end">'
            f"<title>{_e(cls)}</title>{_e(_short(cls, 40))}</text>"
        )
        for j, d in enumerate(domains):
            count = int(table.get(cls, {}).get(d, 0))
            t, x = min(1.0, count / peak), label_w + j * cell_w
            tip = f"{cls} \u00d7 {d}: {count:,} images"
            extra = ""
            if base is not None:
                before = int(base.get(cls, {}).get(d, 0))
                if count > before:
                    tip += f" ({before:,} real + {count - before:,} kept synthetic)"
                    x2 = x + cell_w - 1
                    extra = f'<polygon points="{x2 - 9},{y + 1} {x2},{y + 1} {x2},{y + 10}" fill="{ADDED}"/>'
            stroke = ""
            if (cls, d) in scarce:
                tip += " (scarce in the real data)"
                stroke = f' stroke="{SCARCE}" stroke-width="2"'
            out.append(
                f"<g><title>{_e(tip)}</title>"
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{row_h - 2}" '
                f'fill="{_mix(t)}"{stroke}/>{extra}'
                f'<text x="{x + cell_w / 2:.1f}" y="{y + row_h * 0.72:.1f}" text-anchor="middle" '
                f'fill="{"#fff" if t > 0.55 else "#1d2433"}">{count:,}</text></g>'
            )
    out.append("</svg>")
    marks = f'<span style="background:#fff;outline:2px solid {SCARCE}"></span>scarce cell'
    if base is not None:
        marks += f'<span style="background:{ADDED}"></span>cell grew (synthetic images added)'
    legend = f'<p class="legend">darker = more images (shared scale, max {peak:,}){marks}</p>'
    return legend + _scroll("".join(out), len(classes) > 34)


def diverging_bars(deltas: Mapping[str, float], n: int = 10) -> str:
    """The ``n`` largest per-class gains and ``n`` largest losses (fractions; shown in points)."""
    gains = sorted((kv for kv in deltas.items() if kv[1] > 0), key=lambda kv: (-kv[1], kv[0]))
    losses = sorted((kv for kv in deltas.items() if kv[1] < 0), key=lambda kv: (kv[1], kv[0]))
    rows = sorted(gains[:n] + losses[:n], key=lambda kv: (-kv[1], kv[0]))
    if not rows:
        return "<p class='muted'>No class gained or lost R@1.</p>"
    row_h, font = 16, 11
    label_w = _label_width([c for c, _ in rows], font)
    half = (WIDTH - label_w - 40) / 2
    axis = label_w + 20 + half
    peak = max(abs(v) for _, v in rows) or 1.0
    height = 4 + row_h * len(rows)
    out = [_svg(WIDTH, height, "per-class R@1 change vs baseline", font)]
    out.append(f'<line x1="{axis:.1f}" y1="0" x2="{axis:.1f}" y2="{height}" stroke="#555"/>')
    for i, (cls, delta) in enumerate(rows):
        y = 2 + i * row_h
        w = max(1.0, (half - 40) * abs(delta) / peak)
        x = axis if delta > 0 else axis - w
        end = axis + w + 4 if delta > 0 else axis - w - 4
        anchor = "start" if delta > 0 else "end"
        out.append(
            f"<g><title>{_e(cls)}: {100 * delta:+.1f} R@1 points</title>"
            f'<text x="{label_w - 6}" y="{y + row_h * 0.72:.1f}" text-anchor="end">'
            f"{_e(_short(cls, 40))}</text>"
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" '
            f'fill="{GAIN if delta > 0 else LOSS}"/>'
            f'<text x="{end:.1f}" y="{y + row_h * 0.72:.1f}" text-anchor="{anchor}">'
            f"{100 * delta:+.1f}</text></g>"
        )
    out.append("</svg>")
    return _scroll("".join(out), len(rows) > 40)


def data_uri(path: Path) -> str | None:
    """The image as a ``data:`` URI: a small opaque PNG as it is, anything else (large,
    another format, or transparent) as a small PNG thumbnail composited on white, the way
    the embedder saw it (``atlantis.embed.preprocess.to_rgb``)."""
    from PIL import Image

    from atlantis.embed.preprocess import has_alpha, to_rgb

    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:  # reads the header; pixels only if needed
            if im.format == "PNG" and len(raw) <= MAX_EMBED and not has_alpha(im):
                return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")
            im.draft("RGB", (THUMB, THUMB))  # JPEG: decode at reduced size
            thumb = to_rgb(im)  # composite first: resizing RGBA would darken the edges
            thumb.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            thumb.save(buf, format="PNG", optimize=True)
    except OSError:  # missing or unreadable: the report skips it
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def distribution_charts(data: ReportData) -> str | None:
    """Bars per class (real vs each arm) and class x domain heatmaps (real, then each arm)."""
    real = data.distributions.get("real")
    if real is None:
        return None
    arms = [(n, d) for n, d in data.distributions.items() if n != "real" and d != real]
    same = [n for n, d in data.distributions.items() if n != "real" and d == real]
    under = set(data.insight.under_represented) if data.insight else set()
    scarce = {tuple(c) for c in data.insight.scarce_cells} if data.insight else set()
    out = [
        "<h3>Images per class: real, and real + kept synthetic per arm</h3>",
        class_bars(
            real.class_counts, [(n, d.class_counts, d.synthetic_counts) for n, d in arms], under
        ),
    ]
    if same:
        out.append(f"<p class='muted'>Same as the real data: {_e(', '.join(same))}.</p>")
    grown = [(n, d) for n, d in arms if d.class_domain_counts]
    tables = [real.class_domain_counts, *(d.class_domain_counts for _, d in grown)]
    classes = sorted(
        {c for t in tables for c in t}, key=lambda c: (-real.class_counts.get(c, 0), c)
    )
    domains = sorted({d for t in tables for row in t.values() for d in row})
    peak = max((v for t in tables for row in t.values() for v in row.values()), default=0)
    out.append("<h3>Class \u00d7 domain, real</h3>")
    out.append(heatmap(real.class_domain_counts, classes, domains, peak=peak, scarce=scarce))
    for name, dist in sorted(grown, key=lambda nd: nd[0] != "targeted"):
        out.append(f"<h3>Class \u00d7 domain, real + kept synthetic of {_e(name)}</h3>")
        out.append(
            heatmap(
                dist.class_domain_counts,
                classes,
                domains,
                peak=peak,
                scarce=scarce,
                base=real.class_domain_counts,
            )
        )
    return "".join(out)


def _grid_html(data: ReportData, grid: GridImages) -> str:
    root = Path(data.run)

    def img(p: str, alt: str) -> str:
        uri = data_uri(Path(p) if Path(p).is_absolute() else root / p)
        return f"<img src='{uri}' alt='{_e(alt)}'>" if uri else ""

    out = img(grid.grid, "kept and removed") if grid.grid else ""
    for kind in ("kept", "removed"):
        thumbs = "".join(img(p, kind) for p in getattr(grid, kind))
        out += f"<div class='thumbs'><b>{kind}</b> {thumbs}</div>" if thumbs else ""
    return out


def review_images(data: ReportData, f: FilterSummary, max_classes: int) -> str:
    """The classes with the lowest kept fraction first; classes without images are skipped."""
    order = sorted(
        f.grids, key=lambda c: (f.kept_fraction.get(c) is None, f.kept_fraction.get(c) or 0, c)
    )
    out: list[str] = []
    for cls in order:
        if len(out) == max_classes:
            break
        body = _grid_html(data, f.grids[cls])
        if body:
            out.append(
                f"<h4>{_e(cls)} <span class='muted'>(kept {_percent(f.kept_fraction.get(cls))})</span></h4>{body}"
            )
    return f"<div class='grid'>{''.join(out)}</div>" if out else ""


def _percent(x: float | None) -> str:
    return "? %" if x is None else f"{100 * x:.0f}%"


def line_chart(series: Mapping[str, Sequence[tuple[float, float, float]]], *, x_label: str,
               y_label: str, label: str) -> str:  # fmt: skip
    """Lines of ``(x, y, std)`` points per series, with a ±std whisker at each point.

    For the budget curve: x is the synthetic-image budget, y R@1 (fractions, drawn in
    percent). Each point's tooltip gives the exact numbers.
    """
    points = [p for pts in series.values() for p in pts]
    if not points:
        return "<p class='muted'>No points to plot.</p>"
    width, height, font = 640, 300, 12
    left, right, top, bottom = 56, 16, 12, 44
    xs = [p[0] for p in points]
    lows = [p[1] - p[2] for p in points]
    highs = [p[1] + p[2] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(lows), max(highs)
    pad = (y1 - y0) * 0.08 or 0.01
    y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1

    def px(x: float) -> float:
        return left + (width - left - right) * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + (height - top - bottom) * (1 - (y - y0) / (y1 - y0))

    out = [_svg(width, height, label, font)]
    for i in range(5):  # horizontal grid with percent labels
        y = y0 + (y1 - y0) * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                   f'stroke="#e3e7ee"/><text x="{left - 6}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end">{100 * y:.1f}</text>')  # fmt: skip
    for x in sorted(set(xs)):
        out.append(f'<text x="{px(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                   f"{x:g}</text>")  # fmt: skip
    out.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" '
               f'text-anchor="middle">{_e(x_label)}</text><text x="14" y="{top + 8}" '
               f'font-size="{font - 1}">{_e(y_label)}</text>')  # fmt: skip
    colours = {name: ARM_COLOURS[i % len(ARM_COLOURS)] for i, name in enumerate(series)}
    for name, pts in series.items():
        c = colours[name]
        pts = sorted(pts)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y, sd in pts:
            tip = f"{name}: budget {x:g}, R@1 {100 * y:.2f} ± {100 * sd:.2f}"
            out.append(f'<g><title>{_e(tip)}</title><line x1="{px(x):.1f}" x2="{px(x):.1f}" '
                       f'y1="{py(y - sd):.1f}" y2="{py(y + sd):.1f}" stroke="{c}"/>'
                       f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{c}"/></g>')  # fmt: skip
    out.append("</svg>")
    return _legend([(colours[n], n) for n in series]) + "".join(out)

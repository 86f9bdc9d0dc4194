"""The insight report: ``insight.json`` and the detectors' findings as one HTML page.

One self-contained file (inline CSS and SVG, no JavaScript, no external assets) so the report
opens anywhere, can be attached to an issue or archived with a run, and cannot break when a
CDN moves. Charts are precomputed SVG: a sorted class-count bar chart and a class x domain
heatmap, both compact enough for a few hundred classes (they scroll past a fixed height),
with exact numbers in each element's ``<title>`` tooltip.

Every string from the data (class names, captions, LLM text, detector details) is untrusted
and goes through :func:`html.escape`; the page states prominently which backend wrote the
text, because "rules (no LLM)" prose must never be mistaken for a model's judgement.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from atlantis.insight.schema import Insight
from atlantis.insight.sizes import typical_class_size
from atlantis.redact import write_redacted

__all__ = ["backend_label", "render_insight_report"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2433;margin:0;
background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:18px 24px 48px}
h1{font-size:24px;margin:6px 0}h2{font-size:18px;margin:0 0 10px;border-bottom:1px solid #dde1e7;
padding-bottom:4px}h3{font-size:15px;margin:14px 0 6px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 18px;margin:14px 0}
.meta{display:flex;flex-wrap:wrap;gap:6px 18px;color:#4a5366}.meta b{color:#1d2433}
.backend{display:inline-block;margin:8px 0;padding:6px 12px;border-radius:6px;font-weight:600;
background:#e3f0ff;border:1px solid #8db8ec}.backend.rules{background:#fff4d6;border-color:#e5b94a}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:3px 8px;
border-bottom:1px solid #edf0f3;vertical-align:top}th{background:#f7f8fa}
table.kv>tbody>tr>th{width:190px;background:none;font-weight:600}
table table{font-size:12px}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:640px;overflow:auto;border:1px solid #edf0f3}
.pill{display:inline-block;padding:1px 8px;margin:2px;border-radius:10px;background:#eef1f5}
.st-ok{color:#17803d}.st-skipped{color:#8a6d00}.st-failed{color:#c0262d}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px -2px 12px;border-radius:2px}
pre{white-space:pre-wrap;background:#fbf1f1;padding:8px;border-radius:4px}
.muted{color:#6b7385}svg text{font-family:system-ui,sans-serif}
"""

_BAR, _BAR_LOW, _SCARCE = "#4c78a8", "#e45756", "#d62728"
_CHAR_W = 6.6  # approximate width of one 11px sans-serif character, for layout only


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def backend_label(metadata: dict[str, Any]) -> str:
    """Who wrote the report's prose: the LLM backend's name, or ``rules (no LLM)``."""
    llm = metadata.get("llm")
    if isinstance(llm, dict):
        llm = llm.get("identity") or llm.get("name") or llm.get("backend")
    if metadata.get("is_language_model") is False:
        return "rules (no LLM)" + (f" \u2014 {llm}" if llm and str(llm) != "rules" else "")
    return f"LLM: {llm}" if llm else "unknown backend"


def _ordered_counts(insight: Insight) -> list[tuple[str, int]]:
    names = list(dict.fromkeys([*insight.class_names, *insight.class_counts]))
    counts = [(n, int(insight.class_counts.get(n, 0))) for n in names]
    return sorted(counts, key=lambda nc: (-nc[1], nc[0]))


def _bar_chart(insight: Insight) -> str:
    """Horizontal bars, largest class first; under-represented classes in red."""
    rows = _ordered_counts(insight)
    if not rows:
        return "<p class='muted'>No classes.</p>"
    low = set(insight.under_represented_classes)
    row_h, font = (18, 12) if len(rows) <= 60 else (12, 10)
    label_w = min(300, int(max(len(_short(n, 40)) for n, _ in rows) * _CHAR_W * font / 11) + 12)
    width, top = 960, 22
    bar_w = width - label_w - 70
    peak = max(c for _, c in rows) or 1
    median = typical_class_size(c for _, c in rows)  # the size classes are measured against
    height = top + row_h * len(rows) + 6
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="class counts" font-size="{font}">'
    ]
    mx = label_w + bar_w * median / peak
    out.append(
        f'<line x1="{mx:.1f}" y1="{top - 6}" x2="{mx:.1f}" y2="{height}" stroke="#555" '
        f'stroke-dasharray="4 3"/><text x="{mx + 4:.1f}" y="{top - 9}" fill="#555">'
        f"typical {_fmt(median)}</text>"
    )
    for i, (name, count) in enumerate(rows):
        y = top + i * row_h
        colour = _BAR_LOW if name in low else _BAR
        tip = f"{name}: {count:,} images" + (" (under-represented)" if name in low else "")
        out.append(
            f"<g><title>{_e(tip)}</title>"
            f'<text x="{label_w - 6}" y="{y + row_h * 0.72:.1f}" text-anchor="end" '
            f'fill="{_BAR_LOW if name in low else "#1d2433"}">{_e(_short(name, 40))}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{max(1.0, bar_w * count / peak):.1f}" '
            f'height="{row_h - 4}" fill="{colour}" rx="2"/>'
            f'<text x="{label_w + bar_w * count / peak + 4:.1f}" y="{y + row_h * 0.72:.1f}">'
            f"{count:,}</text></g>"
        )
    out.append("</svg>")
    legend = (
        f'<p class="legend"><span style="background:{_BAR}"></span>class'
        f'<span style="background:{_BAR_LOW}"></span>under-represented '
        f"({len(low)} of {len(rows)}) &nbsp; dashed line: typical class size</p>"
    )
    return legend + _scroll("".join(out), len(rows) > 34)


def _scroll(inner: str, scroll: bool) -> str:
    return f'<div class="scroll">{inner}</div>' if scroll else f"<div>{inner}</div>"


def _mix(t: float) -> str:
    """Sequential colour from near-white (0) to deep blue (1)."""
    lo, hi = (243, 247, 251), (31, 78, 140)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(lo, hi, strict=True))


def _heatmap(insight: Insight) -> str:
    """Class x domain counts; scarce cells outlined in red; exact numbers in tooltips."""
    table = insight.class_domain_counts
    if not table:
        return "<p class='muted'>No class x domain counts.</p>"
    domains = list(
        dict.fromkeys(
            [d.name for d in insight.domains] + [d for row in table.values() for d in row]
        )
    )
    classes = [n for n, _ in _ordered_counts(insight) if n in table]
    classes += sorted(set(table) - set(classes))
    scarce = {(c.class_name, c.domain): c.expected for c in insight.scarce_cells}
    row_h, font = (18, 12) if len(classes) <= 60 else (13, 10)
    label_w = min(300, int(max(len(_short(c, 40)) for c in classes) * _CHAR_W * font / 11) + 12)
    cell_w = max(44, min(110, (960 - label_w) // max(1, len(domains))))
    longest = max(len(_short(d, 24)) for d in domains)
    rotate = longest * _CHAR_W > cell_w - 6  # long domain names: slanted headers
    span = longest * _CHAR_W
    head = int(span * 0.65) + 16 if rotate else 20  # sin(40 deg) of the slanted text, + margin
    tail = int(span * 0.77) if rotate else 0  # cos(40 deg): the last header overhangs right
    width = label_w + cell_w * len(domains) + 4 + tail
    height = head + row_h * len(classes) + 4
    peak = max((v for row in table.values() for v in row.values()), default=0) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="class by domain counts" font-size="{font}">'
    ]
    for j, d in enumerate(domains):
        x, y = label_w + j * cell_w + cell_w / 2, head - 6
        pos = (
            f'x="{x - 4:.1f}" y="{y}" text-anchor="start" transform="rotate(-40 {x - 4:.1f} {y})"'
            if rotate
            else f'x="{x:.1f}" y="{y}" text-anchor="middle"'
        )
        out.append(f"<text {pos}><title>{_e(d)}</title>{_e(_short(d, 24))}</text>")
    for i, cls in enumerate(classes):
        y = head + i * row_h
        out.append(
            f'<text x="{label_w - 6}" y="{y + row_h * 0.72:.1f}" text-anchor="end">'
            f"<title>{_e(cls)}</title>{_e(_short(cls, 40))}</text>"
        )
        for j, d in enumerate(domains):
            count = int(table[cls].get(d, 0))
            t = count / peak
            x = label_w + j * cell_w
            tip = f"{cls} \u00d7 {d}: {count:,} images"
            stroke = ""
            if (cls, d) in scarce:
                tip += f" (scarce; a balanced spread gives {scarce[(cls, d)]:.1f})"
                stroke = f' stroke="{_SCARCE}" stroke-width="2"'
            out.append(
                f"<g><title>{_e(tip)}</title>"
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{row_h - 2}" '
                f'fill="{_mix(t)}"{stroke}/>'
                f'<text x="{x + cell_w / 2:.1f}" y="{y + row_h * 0.72:.1f}" text-anchor="middle" '
                f'fill="{"#fff" if t > 0.55 else "#1d2433"}">{count:,}</text></g>'
            )
    out.append("</svg>")
    legend = (
        f'<p class="legend">darker = more images (max {peak:,})'
        f'<span style="background:#fff;outline:2px solid {_SCARCE}"></span>scarce cell '
        f"({len(scarce)})</p>"
    )
    return legend + _scroll("".join(out), len(classes) > 34)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], num: Iterable[int] = ()) -> str:
    """A plain table of escaped cells; columns in ``num`` are right-aligned numbers."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    right = set(num)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if j in right else ''}>{_e(_fmt(v))}</td>" for j, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _header(insight: Insight, title: str) -> str:
    md = insight.metadata
    label = backend_label(md)
    facts = {
        "dataset": md.get("dataset", "?"),
        "split": md.get("split", "?"),
        "images": sum(insight.class_counts.values()),
        "classes": len(insight.class_names),
        "domains": len(insight.domains),
        "domains vary by": insight.domain_criterion,
        "imbalance ratio": insight.imbalance_ratio,
        "captioner": md.get("captioner", "?"),
    }
    meta = "".join(f"<span>{_e(k)}: <b>{_e(_fmt(v))}</b></span>" for k, v in facts.items())
    rules = " rules" if md.get("is_language_model") is False else ""
    prov = _table(["key", "value"], [(k, _short(_fmt(v), 400)) for k, v in sorted(md.items())])
    return (
        f"<header><h1>{_e(title)}</h1><div class='meta'>{meta}</div>"
        f'<div class="backend{rules}">Text written by: {_e(label)}</div>'
        f"<details><summary>Provenance (metadata)</summary>{prov}</details></header>"
    )


def _overview(insight: Insight) -> str:
    recs = sorted(insight.domain_imbalance_recommendations.items())
    table = _table(["class", "domain recommendation"], recs) if recs else "<p>None.</p>"
    return (
        f"<section><h2>Overview</h2><p>{_e(insight.data_overview)}</p>"
        f"<h3>Class imbalance</h3><p>{_e(insight.class_imbalance_recommendations)}</p>"
        f"<h3>Domain imbalance, per class ({len(recs)})</h3>{_scroll(table, len(recs) > 15)}"
        "</section>"
    )


def _vocabulary(insight: Insight) -> str:
    domains = _table(
        ["domain", "description", "keywords", "distinctive caption tokens"],
        [(d.name, d.description, ", ".join(d.keywords),
          ", ".join(f"{t.token} ({t.count})" for t in insight.domain_tokens.get(d.name, [])))
         for d in insight.domains],
    )  # fmt: skip
    nouns = [(t.token, t.count) for t in insight.top_tokens if t.pos == "noun"][:25]
    verbs = [(t.token, t.count) for t in insight.top_tokens if t.pos == "verb"][:25]
    tokens = (
        f"<div style='display:flex;gap:18px'><div style='flex:1'><h3>Nouns</h3>"
        f"{_table(['noun', 'count'], nouns, [1])}</div><div style='flex:1'><h3>Verbs</h3>"
        f"{_table(['verb', 'count'], verbs, [1])}</div></div>"
    )
    per_class = [
        (c, ", ".join(f"{t.token} ({t.count})" for t in toks[:10]))
        for c, toks in sorted(insight.top_tokens_per_class.items())
    ]
    if per_class:
        tokens += f"<details><summary>Per class</summary>{_table(['class', 'tokens'], per_class)}"
        tokens += "</details>"
    new = "".join(f"<span class='pill'>{_e(c)}</span>" for c in insight.new_classes) or "None."
    if why := insight.metadata.get("new_classes_rationale"):
        new += f"<br><small>{_e(str(why))}</small>"
    return (
        f"<section><h2>Domains (varying by {_e(insight.domain_criterion)})</h2>{domains}"
        f"</section><section><h2>Caption vocabulary</h2>{tokens}</section>"
        f"<section><h2>New classes suggested</h2><p>{new}</p></section>"
    )


def _value(v: Any, limit: int = 20) -> str:
    """A summary value as HTML: lists of records become small tables, the rest short text."""
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        keys = list(dict.fromkeys(k for x in v[:limit] for k in x))
        return _table(keys, [[_short(_fmt(x.get(k, "")), 120) for k in keys] for x in v[:limit]])
    if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
        return _value([{"": k, **x} for k, x in v.items()], limit)
    if isinstance(v, dict):
        return _e(_short(", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()), 600))
    if isinstance(v, list):
        return _e(_short(", ".join(_fmt(x) for x in v), 600)) or "\u2014"
    return _e(_fmt(v))


def _findings(detectors: list[dict[str, Any]]) -> str:
    if not detectors:
        return "<section><h2>Detector findings</h2><p class='muted'>None run.</p></section>"
    parts = ["<section><h2>Detector findings</h2>"]
    for d in detectors:
        status = str(d.get("status", "?"))
        counts = f" \u2014 {d.get('n_flagged', 0):,} of {d.get('n_items', 0):,} flagged"
        parts.append(
            f"<h3>{_e(d.get('name', '?'))} <span class='st-{_e(status)}'>[{_e(status)}]"
            f"</span>{_e(counts) if status == 'ok' else ''}</h3>"
        )
        if d.get("error"):
            parts.append(f"<pre>{_e(d['error'])}</pre>")
        summary = d.get("summary") or {}
        if summary:
            rows = "".join(
                f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in summary.items()
            )
            parts.append(f"<table class='kv'>{rows}</table>")
        items = d.get("top_items") or []
        if items:
            top = _value(
                [
                    {"item": i.get("key"), "score": i.get("score"), **(i.get("detail") or {})}
                    for i in items
                ]
            )
            parts.append(
                f"<details><summary>Most severe items ({len(items)})</summary>{top}</details>"
            )
    return "".join(parts) + "</section>"


def render_insight_report(
    insight: Insight,
    detectors: list[dict[str, Any]] | None,
    out_path: Path | str,
    *,
    title: str = "ATLANTIS data insight",
) -> Path:
    """Write the report to ``out_path`` atomically and return the path.

    ``detectors`` are ``DetectorResult.to_dict()`` views; ``None`` uses ``insight.findings``.
    """
    findings = insight.findings if detectors is None else detectors
    n_classes = len(_ordered_counts(insight))
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"{_header(insight, title)}{_overview(insight)}"
        f"<section><h2>Images per class ({n_classes})</h2>{_bar_chart(insight)}</section>"
        f"<section><h2>Images per class and domain</h2>{_heatmap(insight)}</section>"
        f"{_vocabulary(insight)}{_findings(findings)}</main></body></html>\n"
    )
    out = Path(out_path)
    write_redacted(out, page)
    return out

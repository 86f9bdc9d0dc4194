"""The run report as one self-contained HTML page, rendered from :class:`ReportData`.

One file (inline CSS and SVG, review images as ``data:`` URIs, no JavaScript and no URL of
any kind) so a run's result can be mailed, attached to an issue or archived and still opens
years later. The caveats come first: a reader must see, before any number, that for example
the insight was written by rules rather than a language model, or that only one seed ran.

Every section whose data is missing is replaced by a one-line note instead of failing: a
report of a partial run is still worth reading. Every string from the data (class and arm
names, LLM prose, config values) is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from atlantis.insight.report import _CSS, _e, _fmt, _short, _table
from atlantis.redact import write_redacted
from atlantis.report.charts import distribution_charts, diverging_bars, line_chart, review_images
from atlantis.report.fidelity import ArmFidelity
from atlantis.report.schema import (
    AffectedClasses,
    BudgetCurve,
    Headroom,
    HeadroomDiff,
    MetricStat,
    PairedStat,
    ReportData,
    SeedResult,
    SyntheticImages,
    metric_order,
)

__all__ = ["eta_sentence", "fidelity_line", "headroom_sentence", "per_rule_line",
           "render_report"]  # fmt: skip

_MORE_CSS = """
.notes{background:#fff4d6;border:1px solid #e5b94a;border-radius:6px;padding:6px 14px}
nav a{margin-right:12px}.d-pos{color:#17803d}.d-neg{color:#c0262d}.sub{font-size:11px}
.grid>img{display:block;margin:4px 0 10px;max-width:100%}
.thumbs{display:flex;align-items:center;gap:4px;margin:4px 0}.thumbs b{width:72px}
.thumbs img{width:64px;height:64px;object-fit:contain;background:#f7f8fa}
"""


def _pct(x: float | None) -> str:
    return "\u2014" if x is None else f"{100 * x:.1f}"


def _delta(d: float) -> str:
    cls = "d-pos" if d > 0 else "d-neg" if d < 0 else "muted"
    return f"<span class='{cls}'>{100 * d:+.1f}</span>"


def _htable(header: Sequence[str], rows: Iterable[Sequence[str]], num_from: int = 1) -> str:
    """A table of pre-escaped HTML cells; columns from ``num_from`` on are right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if j >= num_from else ''}>{c}</td>" for j, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _counts(seeds: Sequence[SeedResult], key: str) -> str:
    """One arm's optimiser steps / images seen over its seeds: one value, or min-max."""
    values = [v for s in seeds if (v := getattr(s, key)) is not None]
    if not values:
        return "\u2014"
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}\u2013{hi:,}"


def paired_sentence(p: PairedStat) -> str:
    """One paired difference in words (plain text, not escaped), e.g. for R@1.

    Written so that a reader who skips the table still learns whether the difference is
    evidence: with one seed there is no interval, and an interval spanning 0 is "not
    significant" however large the mean looks.
    """
    size = f"{abs(100 * p.mean):.1f} points {p.metric}"
    verb = (f"beats {p.b} by {size}" if p.mean > 0 else f"trails {p.b} by {size}"
            if p.mean < 0 else f"ties with {p.b} on {p.metric}")  # fmt: skip
    if p.lo is None or p.hi is None:
        return (f"{p.a} {verb} on a single seed: no interval can be computed, so this is "
                "not evidence either way (train more seeds).")  # fmt: skip
    interval = (f"{round(100 * p.confidence):d} % interval {100 * p.lo:.1f} to {100 * p.hi:.1f} "
                f"over {p.n} paired seeds")  # fmt: skip
    verdict = ("significant (the interval excludes 0)" if p.significant
               else "not significant (the interval includes 0)")  # fmt: skip
    return f"{p.a} {verb} ({interval}): {verdict}."


def _paired(data: ReportData) -> str:
    """Arm-minus-arm differences paired on shared seeds, as a table and R@1 sentences."""
    if not data.paired:
        return ""
    pairs = list(dict.fromkeys((p.a, p.b) for p in data.paired))
    metrics = metric_order(p.metric for p in data.paired)
    cell = {(p.a, p.b, p.metric): p for p in data.paired}
    rows = []
    for a, b in pairs:
        row = [f"{_e(a)} \u2212 {_e(b)}"]
        for m in metrics:
            p = cell.get((a, b, m))
            if p is None:
                row.append("\u2014")
                continue
            text = _delta(p.mean)
            if p.lo is not None and p.hi is not None:
                text += f" <span class='sub'>[{100 * p.lo:+.1f}, {100 * p.hi:+.1f}]</span>"
            row.append(f"<b>{text}</b>" if p.significant else text)
        ns = {cell[(a, b, m)].n for m in metrics if (a, b, m) in cell}
        row.append(", ".join(map(str, sorted(ns))))
        rows.append(row)
    r1 = [cell[(a, b, "R@1")] for a, b in pairs if (a, b, "R@1") in cell]
    sentences = "".join(f"<li>{_e(paired_sentence(p))}</li>" for p in r1)
    return (
        "<h3>Paired differences (same seeds)</h3><p>Arms train on the same seeds, so each seed "
        "of one arm is compared with the same seed of the other. Mean difference in points "
        "with its 95 % Student t interval [lo, hi]; bold when the interval excludes 0 "
        f"(significant).</p>{_htable(['difference', *metrics, 'paired seeds'], rows)}"
        + (f"<ul>{sentences}</ul>" if sentences else "")
    )


def _interval_words(d: HeadroomDiff) -> str:
    """How the headroom's noise was judged, for the sentence (plain text)."""
    p = d.paired
    if p is not None and p.lo is not None and p.hi is not None:
        return (f"{round(100 * p.confidence):d} % paired interval {100 * p.lo:.1f} to "
                f"{100 * p.hi:.1f} over {p.n} seeds")  # fmt: skip
    if d.within_noise is None:
        return "one seed, no interval"
    return f"± {100 * d.std:.1f} over the seeds, no shared seeds to pair"


def headroom_sentence(h: Headroom) -> str:
    """The headroom in words (plain text, not escaped).

    The point of an oracle is to say whether the run could have shown anything: if putting
    the withheld real images back does not measurably help, no augmentation arm's win or loss
    in this run is evidence about augmentation, and the reader must be told so first.
    """
    d = h.overall
    gain = f"{100 * d.mean:+.1f} points R@1 over {h.baseline} ({_interval_words(d)})"
    lead = f"Restoring the images the scenario withheld ({h.oracle}) gives {gain}"
    if h.has_headroom is False:
        why = ("within the seeds' noise" if d.within_noise else
               f"the {h.oracle} does not beat {h.baseline}")  # fmt: skip
        out = (f"{lead}: {why}. This scenario cannot show an augmentation effect: even the "
               "real images it took away do not measurably help, so no arm's difference "
               "here is evidence for or against augmentation.")  # fmt: skip
        a = h.affected
        if a is not None and a.within_noise is False and a.mean > 0:
            out += (f" On the affected classes alone the {h.oracle} gains "
                    f"{100 * a.mean:+.1f} points ({_interval_words(a)}), so an effect could "
                    "show only there.")  # fmt: skip
        return out
    if h.has_headroom is None:
        return (f"{lead}: with one seed the noise is unknown, so whether this scenario can "
                "show an augmentation effect is undecided (train more seeds).")  # fmt: skip
    shares = [f"{arm} recovers {100 * v:.0f} %" for arm, v in d.shares.items() if v is not None]
    tail = f" Of that headroom, {', '.join(shares)}." if shares else ""
    return (f"{lead}: the scenario leaves room for augmentation to help, and this is the most "
            f"any augmentation could gain.{tail}")  # fmt: skip


def _stat_cell(stat: MetricStat | None) -> str:
    return "—" if stat is None else f"{_pct(stat.mean)} ± {_pct(stat.std)}"


def _headroom_rows(h: Headroom) -> tuple[list[str], list[list[str]]]:
    arms = list(dict.fromkeys(a for d in (h.overall, h.affected) if d for a in d.shares))
    rows = []
    for label, d in (("all test classes", h.overall), ("affected classes", h.affected)):
        if d is None:
            continue
        p = d.paired
        interval = ("—" if p is None or p.lo is None or p.hi is None
                    else f"[{100 * p.lo:+.1f}, {100 * p.hi:+.1f}]")  # fmt: skip
        shares = [("—" if (v := d.shares.get(a)) is None else f"{100 * v:.0f} %")
                  for a in arms]  # fmt: skip
        rows.append([label, f"{_delta(d.mean)} ± {100 * d.std:.1f}", interval, str(d.n),
                     *shares])  # fmt: skip
    header = ["classes", "headroom (points)", "95 % paired interval", "seeds",
              *(f"{a}: share recovered" for a in arms)]  # fmt: skip
    return header, rows


def _affected_part(a: AffectedClasses) -> str:
    named = ", ".join(a.classes[:12]) + (" ..." if len(a.classes) > 12 else "")
    what = ("the classes the scenario took training images from" if a.source == "scenario"
            else "the classes the insight flagged as under-represented")  # fmt: skip
    intro = f"<h3>Affected classes</h3><p>R@1 on {_e(what)} ({len(a.classes)}: {_e(named)})"
    if not a.applicable:
        return f"{intro}: {_e(a.note)}.</p>"
    arms = list(dict.fromkeys([*a.affected, *a.rest]))
    rows = [[_e(arm), _stat_cell(a.affected.get(arm)), _stat_cell(a.rest.get(arm))]
            for arm in arms]  # fmt: skip
    return (f"{intro} and on the other test classes, per arm: the mean of per-class R@1 over "
            f"each group, mean ± std over seeds, in percent. {len(a.test_classes)} "
            f"affected and {a.n_rest} other test classes.</p>"
            + _htable(["arm", "affected classes R@1", "other classes R@1"], rows))  # fmt: skip


def _headroom(data: ReportData) -> str | None:
    """Oracle headroom and the affected-class table: could this run show an effect at all?"""
    parts = []
    if (h := data.headroom) is not None:
        header, rows = _headroom_rows(h)
        parts.append(
            f"<p><b>{_e(headroom_sentence(h))}</b></p><p>Headroom = {_e(h.oracle)} − "
            f"{_e(h.baseline)} R@1 (mean ± std over seeds); share recovered = (arm "
            f"− {_e(h.baseline)}) / ({_e(h.oracle)} − {_e(h.baseline)}), left out "
            f"when there is no headroom. Within the noise when: {_e(h.rule)}.</p>"
            + _htable(header, rows)
        )
    if data.affected_classes is not None:
        parts.append(_affected_part(data.affected_classes))
    return "".join(parts) or None


def _header(data: ReportData, nav: str) -> str:
    seeds = sorted({s.seed for a in data.arms for s in a.seeds})
    facts = {
        "created": data.created or "?",
        "run": data.run or "?",
        "baseline": data.baseline,
        "arms": ", ".join(a.name for a in data.arms) or "none",
        "seeds": seeds or "none",
    }
    meta = "".join(f"<span>{_e(k)}: <b>{_e(_fmt(v))}</b></span>" for k, v in facts.items())
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    notes = f"<div class='notes'><b>Caveats</b><ul>{notes}</ul></div>" if notes else ""
    cfg = _table(
        ["key", "value"], [(k, _short(_fmt(v), 400)) for k, v in data.config_summary.items()]
    )
    return (
        f"<header><h1>{_e(data.title)}</h1><div class='meta'>{meta}</div>{notes}"
        f"<details><summary>Configuration</summary>{cfg}</details><nav>{nav}</nav></header>"
    )


def _insight(data: ReportData) -> str | None:
    ins = data.insight
    if ins is None:
        return None
    rules = " rules" if ins.is_language_model is False else ""

    def pills(items: Iterable[str]) -> str:
        return "".join(f"<span class='pill'>{_e(i)}</span>" for i in items) or "None."

    return (
        f"<div class='backend{rules}'>Text written by: {_e(ins.backend)}</div>"
        f"<p>{_e(ins.data_overview)}</p><h3>Under-represented classes</h3>"
        f"<p>{pills(ins.under_represented)}</p><h3>Scarce cells (class \u00d7 domain)</h3>"
        f"<p>{pills(f'{c} × {d}' for c, d in ins.scarce_cells)}</p>"
        f"<h3>New classes suggested</h3><p>{pills(ins.new_classes)}</p>"
    )


def _retrieval(data: ReportData) -> str | None:
    if not data.arms:
        return None
    metrics = metric_order(k for a in data.arms for k in a.summary)
    best = {
        m: max((a.summary[m].mean for a in data.arms if m in a.summary), default=None)
        for m in metrics
    }
    base = data.arm(data.baseline)
    rows = []
    for arm in data.arms:
        row = [
            f"<b>{_e(arm.name)}</b><div class='sub muted'>{_e(arm.description)}</div>",
            _images_cell(arm.synthetic_images),
            str(len(arm.seeds)),
        ]
        for m in metrics:
            stat = arm.summary.get(m)
            if stat is None:
                row.append("\u2014")
                continue
            cell = f"{_pct(stat.mean)} \u00b1 {_pct(stat.std)} <span class='sub muted'>n={stat.n}</span>"
            if stat.mean == best[m]:
                cell = f"<b>{cell}</b>"
            if base is not None and arm is not base and m in base.summary:
                cell += f"<div class='sub'>\u0394 {_delta(stat.mean - base.summary[m].mean)}</div>"
            row.append(cell)
        rows.append(row)
    # Optimisation per arm, only when some train stage recorded it (older runs did not).
    counts = [(k, title) for k, title in (("optimizer_steps", "steps"),
                                          ("images_seen", "images seen"))
              if any(getattr(s, k) is not None for a in data.arms for s in a.seeds)]  # fmt: skip
    for row, arm in zip(rows, data.arms, strict=True):
        row[3:3] = [_counts(arm.seeds, k) for k, _ in counts]
    header = ["arm", "synthetic planned / sourced / kept", "seeds",
              *(title for _, title in counts), *metrics]  # fmt: skip
    splits = ", ".join(data.splits_evaluated) or "test (real)"
    seeds = [
        (
            a.name,
            s.seed,
            *(_pct(s.metrics().get(m)) for m in metrics),
            "\u2014" if s.best_epoch is None else s.best_epoch,
            _pct(s.val_r1),
        )
        for a in data.arms
        for s in a.seeds
    ]
    seed_table = _table(
        ["arm", "seed", *metrics, "best epoch", "val R@1"], seeds, range(1, len(metrics) + 4)
    )
    out = (
        f"<p>Evaluated on: {_e(splits)}. Mean \u00b1 std over seeds, in percent; best mean in "
        f"bold; \u0394 in points vs {_e(data.baseline)}.</p>{_htable(header, rows)}"
        f"<details><summary>Per seed</summary>{seed_table}</details>{_paired(data)}"
    )
    if data.synthetic_test:
        keys = metric_order(k for m in data.synthetic_test.values() for k in m)
        srows = [(arm, *(_pct(m.get(k)) for k in keys)) for arm, m in data.synthetic_test.items()]
        out += f"<h3>Synthetic test set X_s</h3>{_table(['arm', *keys], srows, range(1, len(keys) + 1))}"
    else:
        out += "<p class='muted'>No synthetic test set was evaluated.</p>"
    return out


def _images_cell(syn: SyntheticImages) -> str:
    """Planned / sourced / kept, with what the arm trained on when that differs."""
    if syn.restored:
        return f"{syn.restored:,} real images restored"
    if not (syn.planned or syn.generated or syn.kept):
        return "\u2014"
    cell = f"{syn.planned:,} / {syn.generated:,} / {syn.kept:,}"
    notes = []
    if syn.budget is not None and syn.planned < syn.budget:
        notes.append(f"budget {syn.budget:,}: {syn.budget - syn.planned:,} unplanned")
    if syn.trained is not None and syn.trained != syn.kept:
        notes.append(f"trained on {syn.trained:,}")
    if notes:
        cell += f"<div class='sub muted'>{_e('; '.join(notes))}</div>"
    return cell


def eta_sentence(curve: BudgetCurve) -> str:
    """eta in words: how many naive images one targeted image was worth, per budget."""
    if not curve.eta:
        return ("eta (supplement E.3) was not measured: it needs the naive and the targeted "
                "arm at the same budgets.")  # fmt: skip
    parts = []
    for e in curve.eta:
        if e.beyond:
            parts.append(f"at budget {e.budget}, the naive arm never reached the targeted "
                         f"R@1 ({100 * e.targeted_r1:.1f}) up to {e.naive_budget:g} images, "
                         f"so eta {e.text}")  # fmt: skip
        elif e.naive_budget == 0:
            parts.append(f"at budget {e.budget}, the targeted R@1 ({100 * e.targeted_r1:.1f}) "
                         "is no better than the baseline's, which needs no synthetic image: "
                         f"eta {e.text}")  # fmt: skip
        else:
            parts.append(f"at budget {e.budget}, the naive arm needs {e.naive_budget:.0f} "
                         f"images for the targeted R@1 ({100 * e.targeted_r1:.1f}): eta "
                         f"{e.text}")  # fmt: skip
    return ("eta = the naive budget reaching the targeted arm's R@1, over the targeted "
            "budget (read off the naive curve by linear interpolation, from the baseline at "
            "0; above 1 means a targeted image is worth more than a naive one): "
            + "; ".join(parts) + ".")  # fmt: skip


def _budget_curve(data: ReportData) -> str | None:
    """R@1 against the budget per arm (a chart and a table) and eta."""
    curve = data.budget_curve
    if curve is None or not curve.arms:
        return None
    series: dict[str, list[tuple[float, float, float]]] = {}
    for arm, points in curve.arms.items():
        pts = [(float(p.budget), p.r1.mean, p.r1.std) for p in points if p.r1 is not None]
        if curve.baseline is not None:
            pts.insert(0, (0.0, curve.baseline.mean, curve.baseline.std))
        series[arm] = pts
    rows = [[_e(arm), f"{p.budget:,}", "\u2014" if p.images is None else f"{p.images:,}",
             _stat_cell(p.r1), str(len(p.seeds))]
            for arm, points in curve.arms.items() for p in points]  # fmt: skip
    eta_rows = [[f"{e.budget:,}", _pct(e.targeted_r1),
                 f"> {e.naive_budget:g}" if e.beyond else f"{e.naive_budget:.1f}", e.text]
                for e in curve.eta]  # fmt: skip
    cut = (" The naive arm was cut to the targeted arm's kept count at every budget "
           "(loop.match_kept).") if curve.match_kept else ""  # fmt: skip
    return (
        "<p>Each arm trained again at each budget on a nested subset of what it sourced at "
        "its full budget (a bigger budget holds every smaller one), with the same optimiser "
        f"steps; budget 0 is the baseline. Mean ± std over seeds, in percent.{cut}</p>"
        + line_chart(series, x_label="synthetic images sourced (budget)", y_label="R@1 (%)",
                     label="R@1 against the synthetic-image budget")
        + _htable(["arm", "budget", "synthetic images trained on", "R@1", "seeds"], rows)
        + f"<p><b>{_e(eta_sentence(curve))}</b></p>"
        + (_htable(["budget", "targeted R@1", "naive budget needed", "eta"], eta_rows)
           if eta_rows else "")
    )  # fmt: skip


def fidelity_line(f: ArmFidelity) -> str:
    """One arm's fidelity in words (the demo prints it; the report's table has the rest)."""

    def share(x: float | None) -> str:
        return "\u2014" if x is None else f"{100 * x:.0f} %"

    if f.basis == "truth":
        line = (f"{share(f.sourced.class_match)} of {f.sourced.n} sourced and "
                f"{share(f.kept.class_match)} of {f.kept.n} kept images are the planned class "
                f"({share(f.sourced.both_match)} and {share(f.kept.both_match)} class and "
                "domain)")  # fmt: skip
    else:
        line = (f"{share(f.sourced.both_match)} of {f.sourced.n} sourced and "
                f"{share(f.kept.both_match)} of {f.kept.n} kept images are the planned class "
                "(proxy)")  # fmt: skip
    if (c := f.confusion) is not None:
        line += (f"; the filter removed {c.wrong_removed} of {c.wrong_kept + c.wrong_removed} "
                 f"wrong and {c.right_removed} of {c.right_kept + c.right_removed} right "
                 "images")  # fmt: skip
    return line


def per_rule_line(fidelity: dict[str, ArmFidelity]) -> str:
    """Each filter rule alone against the truth, every arm in one line ("" when none says)."""
    parts = []
    for arm, f in fidelity.items():
        rules = [f"{name} removed {c.right_removed:,} of {c.right_kept + c.right_removed:,} "
                 f"right and kept {c.wrong_kept:,} of {c.wrong_kept + c.wrong_removed:,} wrong"
                 for name, c in f.per_rule.items()]  # fmt: skip
        if rules:
            parts.append(f"{arm}: " + ", ".join(rules))
    if not parts:
        return ""
    return "Per filter rule (each rule alone, before diversity control): " + "; ".join(parts) + "."


def _fidelity(data: ReportData) -> str | None:
    """Per augmented arm: are its images the planned class and domain (truth or proxy)?"""
    if not data.fidelity:
        return None
    rows = []
    for arm, f in data.fidelity.items():
        c = f.confusion
        rows.append([
            _e(arm), _e(f.basis), f"{f.sourced.n:,}", _pct(f.sourced.class_match),
            _pct(f.sourced.domain_match), _pct(f.sourced.both_match), f"{f.kept.n:,}",
            _pct(f.kept.both_match),
            "\u2014" if c is None else f"{c.right_removed:,} / {c.right_kept + c.right_removed:,}",
            "\u2014" if c is None else f"{c.wrong_kept:,} / {c.wrong_kept + c.wrong_removed:,}",
        ])  # fmt: skip
    notes = "".join(f"<p class='muted'>{_e(a)}: {_e(f.note)}</p>"
                    for a, f in data.fidelity.items() if f.note)  # fmt: skip
    if rules := per_rule_line(data.fidelity):
        notes = f"<p>{_e(rules)}</p>" + notes
    basis = {f.basis for f in data.fidelity.values()}
    intro = ("Against the pool's truth file (each pool image's real class and domain, which "
             "neither the planner nor the source reads): an image is right when its true "
             "class is the planned class and, where the plan named a domain, its true domain "
             "the planned one. " if "truth" in basis else "")  # fmt: skip
    if "proxy" in basis:
        intro += ("Proxy (no truth file): an image counts as right when its nearest real-class "
                  "centroid in the baseline model's space is its planned class; this is the "
                  "model's opinion, not the truth, and it cannot judge domains. ")  # fmt: skip
    return (
        f"<p>{intro}Shares in percent. The last two columns score the filter: right images "
        "it removed (its cost) and wrong images it kept (what it missed).</p>"
        + _htable(["arm", "basis", "sourced", "class right", "domain right", "both right",
                   "kept", "kept: both right", "right removed", "wrong kept"], rows)
        + notes
    )  # fmt: skip


def _deltas(data: ReportData) -> str | None:
    parts = [
        f"<h3>{_e(arm)} vs {_e(data.baseline)}</h3>{diverging_bars(d)}"
        for arm, d in data.per_class_delta.items()
        if d
    ]
    if not parts:
        return None
    return (
        f"<p>Largest per-class R@1 gains and losses, in points (mean over seeds). {_e(_per_class_caveat(data))}</p>"
        + "".join(parts)
    )


def _per_class_caveat(data: ReportData) -> str:
    """Whether the per-class deltas are evidence: with paired intervals, how many classes
    excluded 0; without, say plainly that a single class's delta is seed noise."""
    if not data.per_class_paired:
        return ("These per-class deltas come without an interval: a test class holds few "
                "images, so any one class's delta is single-seed noise until more seeds "
                "give it an interval.")  # fmt: skip
    out = []
    for arm, row in data.per_class_paired.items():
        sig = sorted(c for c, p in row.items() if p.significant)
        n = max(p.n for p in row.values())
        named = f": {', '.join(sig[:8])}{' ...' if len(sig) > 8 else ''}" if sig else ""
        out.append(f"{arm} vs {data.baseline}: {len(sig)} of {len(row)} classes have a 95 % "
                   f"paired interval over {n} seeds that excludes 0{named}.")  # fmt: skip
    out.append("Other classes' deltas are within the seeds' noise; with many classes a few "
               "exclude 0 by chance (about 1 in 20).")  # fmt: skip
    return " ".join(out)


def _filter(data: ReportData, max_classes: int) -> str | None:
    if not data.filter:
        return None
    rows = [
        (
            arm,
            f.synthetic,
            f.kept,
            f.removed,
            ", ".join(f"{k}: {v:,}" for k, v in f.removed_by_reason.items()),
        )
        for arm, f in data.filter.items()
    ]
    out = [_table(["arm", "synthetic", "kept", "removed", "removed by reason"], rows, (1, 2, 3))]
    for arm, f in data.filter.items():
        shown = review_images(data, f, max_classes)
        out.append(
            f"<h3>Review images: {_e(arm)}</h3>{shown or '<p class=muted>No review images found.</p>'}"
        )
    return "".join(out)


def _adversarial(data: ReportData) -> str | None:
    adv = data.adversarial
    if adv is None:
        return None
    named = dict.fromkeys([*adv.clean_r1, *(k for r in adv.rows for k in r.r1)])
    arms = [a.name for a in data.arms if a.name in named]  # the arms' order, then the rest
    arms += [k for k in named if k not in arms]

    def cells(values: dict[str, float], clean: bool) -> list[str]:
        top = max(values.values(), default=None)
        out = []
        for arm in arms:
            v = values.get(arm)
            cell = "\u2014" if v is None else (f"<b>{_pct(v)}</b>" if v == top else _pct(v))
            if not clean and v is not None and arm in adv.clean_r1:
                cell += f" <span class='sub'>{_delta(v - adv.clean_r1[arm])}</span>"
            out.append(cell)
        return out

    rows = [["clean (no attack)", "", "", *cells(adv.clean_r1, True)]]
    rows += [
        [
            str(r.steps),
            f"{r.eps:g}",
            "\u2014" if r.step_size is None else f"{r.step_size:g}",
            *cells(r.r1, False),
        ]
        for r in adv.rows
    ]
    return (
        f"<p>White-box PGD in embedding space: {adv.queries:,} queries against a gallery of "
        f"{adv.gallery:,}; eps and step size as fractions of the pixel range. R@1 in percent, "
        f"change vs clean in points.</p>{_htable(['steps', 'eps', 'step size', *arms], rows)}"
    )


def _cost(data: ReportData) -> str | None:
    cost = data.cost
    if cost is None:
        return None
    rows = [
        (t.name, f"{t.coefficient_s:,g}", f"{t.count:,g}", f"{t.seconds:,.1f}",
         f"{100 * t.share:.1f}%", t.source)
        for t in cost.terms
    ]  # fmt: skip
    total = cost.total_seconds
    rows.append(("total", "", "", f"{total:,.1f}", "100%", f"{_duration(total)} (h:mm:ss)"))
    notes = "".join(f"<li>{_e(n)}</li>" for n in cost.notes)
    table = _table(
        ["term", "coefficient (s)", "count", "seconds", "share", "source"], rows, (1, 2, 3, 4)
    )
    return table + (f"<ul>{notes}</ul>" if notes else "")


def _timings(data: ReportData) -> str | None:
    if not data.timings:
        return None
    total = sum(data.timings.values()) or 1.0
    rows = [
        (k, round(v, 2), _duration(v), f"{100 * v / total:.1f}%") for k, v in data.timings.items()
    ]
    rows.append(("total", round(sum(data.timings.values()), 2), _duration(total), "100%"))
    return _table(["stage", "seconds", "h:mm:ss", "share"], rows, (1, 2, 3))


def render_report(data: ReportData, path: Path | str, *, max_grid_classes: int = 6) -> Path:
    """Write the report to ``path`` atomically and return it.

    ``max_grid_classes`` bounds the review images per arm (and so the file size).
    """
    sections = [  # anchor, title, body (None: not in this run), note shown instead
        ("insight", "Data insight", _insight(data), "No insight in this run."),
        ("data", "Training data before and after augmentation", distribution_charts(data),
         "No class counts in this run."),
        ("retrieval", "Retrieval", _retrieval(data), "No arm was trained."),
        ("headroom", "Headroom and affected classes", _headroom(data),
         "No oracle arm and no affected classes in this run."),
        ("curve", "Budget curve and efficiency gain", _budget_curve(data),
         "No budget curve in this run (set loop.budgets)."),
        ("fidelity", "Source fidelity", _fidelity(data),
         "No fidelity measured (no augmented arm, or neither a truth file nor a baseline)."),
        ("deltas", "Per-class R@1 vs baseline", _deltas(data),
         "No per-class R@1 to compare with the baseline."),
        ("filter", "ORDC filter", _filter(data, max_grid_classes), "No filter ran."),
        ("adversarial", "Adversarial robustness", _adversarial(data),
         "No adversarial evaluation in this run."),
        ("cost", "Cost model", _cost(data), "No cost estimate in this run."),
        ("timings", "Timings", _timings(data), "No timings recorded."),
    ]  # fmt: skip
    nav = "".join(f"<a href='#{a}'>{_e(t)}</a>" for a, t, _, _ in sections)
    body = "".join(
        f"<section id='{a}'><h2>{_e(t)}</h2>{html or f'<p class=muted>{_e(note)}</p>'}</section>"
        for a, t, html, note in sections
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(data.title)}</title><style>{_CSS}{_MORE_CSS}</style></head><body><main>"
        f"{_header(data, nav)}{body}</main></body></html>\n"
    )
    out = Path(path)
    write_redacted(out, page)
    return out

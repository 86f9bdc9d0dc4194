"""CLI command of the filter stage (registered on the shared app).

``atlantis filter RUN --arm targeted --delta 1.5`` applies ORDC and diversity control to the
arm's generated images; ``--delta`` given several times runs a sweep (one filtered set per
delta). Other keys go in with ``--set filter.KEY=VALUE`` (e.g. ``filter.dedup_threshold=0.9``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from atlantis.cli.app import ArmOpt, ConfigOpt, EmbedderOpt, ForceOpt, RunArg, SetOpt, app
from atlantis.cli.common import console, friendly_errors, is_tty, run_config, save_run_config
from atlantis.store.run import Run

if TYPE_CHECKING:
    pass

MAX_ROWS = 20  # classes listed; the lowest kept fractions first (what the feedback looks at)


@app.command("filter")
@friendly_errors
def filter_(
    run_dir: RunArg,
    arm: ArmOpt = "targeted",
    delta: Annotated[
        list[float] | None,
        typer.Option(
            "--delta",
            help="ORDC delta of the radius rule (filter.rule radius or both; inf: no filtering); repeat for a sweep.",
        ),
    ] = None,
    embedder: EmbedderOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Drop synthetic outliers (ORDC) and near duplicates; prints kept/removed per class."""
    from atlantis.filtering.stage import filter_arm, load_filter_stats

    run = Run(run_dir)
    overrides = list(set_ or [])
    if delta:
        values = ", ".join(".inf" if math.isinf(d) else repr(d) for d in delta)
        overrides.append(f"filter.delta=[{values}]")
    if embedder:
        overrides.append(f"filter.embedder={embedder}")
    full = run_config(run, config, overrides)
    cfg = full.filter
    m = filter_arm(run, cfg, arm, full.embed, force=force, progress=is_tty())
    save_run_config(run, full)  # only a config that worked becomes the run's config
    c = m.counts
    console.print(f"{m.stage}: {c.get('synthetic', 0)} synthetic images vs {c.get('real', 0)} "
                  f"real training images ({m.status})", soft_wrap=True)  # fmt: skip
    if cfg.is_sweep:
        print_sweep([load_filter_stats(run, arm, d) for d in cfg.deltas])
    else:
        print_stats(load_filter_stats(run, arm))
    console.print(f"results: {run.stage_dir(m.stage)}", soft_wrap=True)


def print_totals(stats: dict[str, Any]) -> None:
    t = stats["totals"]
    why = ", ".join(f"{k} {v}" for k, v in t["removed_by_reason"].items()) or "none"
    console.print(f"[bold]delta {stats['delta']}[/]: kept {t['kept']} of {t['synthetic']} "
                  f"({_pct(t['kept_fraction'])}); removed: {why}", soft_wrap=True)  # fmt: skip


def print_stats(stats: dict[str, Any]) -> None:
    """Totals, then the classes with the lowest kept fraction (at most ``MAX_ROWS``)."""
    print_totals(stats)
    rows = sorted(stats["per_class"], key=lambda r: (r["kept_fraction"] or 0.0, r["class"]))
    if not rows:
        return
    table = Table(show_edge=False)
    for col in ("class", "real", "synthetic", "kept", "outlier", "duplicate", "kept share"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in rows[:MAX_ROWS]:
        why = r["removed_by_reason"]
        dup = why.get("near_duplicate", 0) + why.get("near_duplicate_real", 0)
        label = r["class"] + (" (new)" if r["new_class"] else "")
        table.add_row(label, str(r["n_real"]), str(r["synthetic"]), str(r["kept"]),
                      str(why.get("outlier", 0)), str(dup),
                      _pct(r["kept_fraction"]))  # fmt: skip
    console.print(table)
    if len(rows) > MAX_ROWS:
        console.print(f"... {len(rows) - MAX_ROWS} more classes in stats.json")


def print_sweep(sweep: list[dict[str, Any]]) -> None:
    """Totals per delta, then one table: each class's kept share under each delta."""
    for stats in sweep:
        print_totals(stats)
    rows = sorted(sweep[0]["per_class"], key=lambda r: r["class"])
    if not rows:
        return
    kept = [{r["class"]: r["kept_fraction"] for r in s["per_class"]} for s in sweep]
    table = Table(show_edge=False)
    for col in ("class", "real", "synthetic", *(f"kept @ delta {s['delta']}" for s in sweep)):
        table.add_column(col, justify="left" if col == "class" else "right")
    order = sorted(rows, key=lambda r: (kept[0][r["class"]] or 0.0, r["class"]))
    for r in order[:MAX_ROWS]:
        label = r["class"] + (" (new)" if r["new_class"] else "")
        table.add_row(label, str(r["n_real"]), str(r["synthetic"]),
                      *(_pct(k[r["class"]]) for k in kept))  # fmt: skip
    console.print(table)
    if len(rows) > MAX_ROWS:
        console.print(f"... {len(rows) - MAX_ROWS} more classes in the stats.json files")


def _pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"

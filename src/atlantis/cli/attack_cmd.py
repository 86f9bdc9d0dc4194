"""``atlantis attack RUN [--arm baseline --arm targeted] [--steps 1,10] [--eps 0.05,0.1,0.5]``.

Adversarial R@1 of trained arms under embedding-space PGD (supplement H): one row per
``(steps, eps)`` cell, one column per arm, and the clean R@1 of the same queries. Without
``--arm`` every finished ``train/<arm>`` stage of the run is attacked. Other keys go in
with ``--set attack.KEY=VALUE`` (e.g. ``attack.step_size=0.01``, ``attack.device=cuda``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from atlantis.cli.app import ConfigOpt, ForceOpt, RunArg, SetOpt, app
from atlantis.cli.common import (
    console,
    friendly_errors,
    is_tty,
    parse_numbers,
    run_config,
    save_run_config,
)
from atlantis.errors import StageError
from atlantis.store.run import Run


@app.command("attack")
@friendly_errors
def attack_(
    run_dir: RunArg,
    arm: Annotated[
        list[str] | None,
        typer.Option("--arm", help="Arm to attack (repeat); default: every trained arm."),
    ] = None,
    steps: Annotated[str | None, typer.Option(help="PGD steps, e.g. 1,10")] = None,
    eps: Annotated[
        str | None, typer.Option(help="L-inf bounds as fractions of [0, 1], e.g. 0.05,0.1,0.5")
    ] = None,
    max_queries: Annotated[
        int | None, typer.Option(help="Attack a seeded subset of the test images (CPU runs).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """White-box PGD on the test queries of each arm: adversarial vs clean R@1."""
    from atlantis.robustness.stage import attack, load_attack

    run = Run(run_dir)
    overrides = list(set_ or [])
    if steps is not None:
        values = parse_numbers(steps, int, "--steps", "1,10")
        overrides.append(f"attack.steps=[{','.join(str(v) for v in values)}]")
    if eps is not None:
        values = parse_numbers(eps, float, "--eps", "0.05,0.1,0.5")
        overrides.append(f"attack.eps=[{','.join(repr(v) for v in values)}]")
    if max_queries is not None:
        overrides.append(f"attack.max_queries={max_queries}")
    full = run_config(run, config, overrides)
    arms = list(arm or []) or trained_arms(run)
    m = attack(run, full.attack, arms, progress=is_tty(), force=force)
    save_run_config(run, full)  # only a config that worked becomes the run's config
    results = load_attack(run)
    console.print(f"{m.stage}: {results['queries']} queries against a gallery of "
                  f"{results['gallery']} clean test images, step size "
                  f"{results['step_size_rule']} ({m.status}, "
                  f"{m.counts.get('cells_reused', 0)} cells reused)", soft_wrap=True)  # fmt: skip
    print_results(results)
    console.print(f"results: {run.stage_dir(m.stage) / 'results.json'}", soft_wrap=True)


def trained_arms(run: Run) -> list[str]:
    """Arms with a finished ``train/<arm>`` stage (delta-sweep sub-stages left out)."""
    arms = [m.stage.split("/")[1] for m in run.stages()
            if m.status == "done" and m.stage.count("/") == 1
            and m.stage.startswith("train/")]  # fmt: skip
    if not arms:
        raise StageError(f"run {run.root}: no finished train stage to attack; train one "
                         f"first: atlantis train {run.root} --arm baseline")  # fmt: skip
    return arms


def print_results(results: dict[str, Any]) -> None:
    """Rows: the clean R@1, then one per (steps, eps); one column per arm (R@1, %)."""
    arms = list(results["arms"])
    table = Table(title="R@1 under PGD", caption="adversarial queries, clean gallery")
    for col in ("steps", "eps"):
        table.add_column(col, justify="right")
    for name in arms:
        table.add_column(name, justify="right")
    table.add_row("clean", "-", *(_pct(results["arms"][a]["clean_R@1"]) for a in arms))
    cells = {(c["steps"], c["eps"]) for a in arms for c in results["arms"][a]["adversarial"]}
    for steps, eps in sorted(cells):
        row = []
        for a in arms:
            hit = [c for c in results["arms"][a]["adversarial"]
                   if (c["steps"], c["eps"]) == (steps, eps)]  # fmt: skip
            row.append(_pct(hit[0]["R@1"]) if hit else "-")
        table.add_row(str(steps), f"{eps:g}", *row)
    console.print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"

"""CLI command of the cost model (registered on the shared app).

``atlantis estimate --originals 1000 --synthetic 2000 --paper-defaults`` prices a run with
the paper's A100 figures (72,165 s); ``--from-run RUN`` uses the coefficients measured on
an earlier run's stage manifests instead, so a small pilot run prices the full one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from atlantis.cli.app import JsonOpt, MaybeArmOpt, app
from atlantis.cli.common import console, err_console, friendly_errors
from atlantis.errors import ConfigError
from atlantis.store.run import Run


@app.command()
@friendly_errors
def estimate(
    originals: Annotated[int, typer.Option("--originals", help="N_o: real images to analyse.")],
    synthetic: Annotated[int, typer.Option("--synthetic", help="N_s: images to make.")],
    from_run: Annotated[
        Path | None, typer.Option("--from-run", help="Measure the coefficients on this run.")
    ] = None,
    arm: MaybeArmOpt = None,  # the arm whose stages of --from-run are measured (targeted)
    paper_defaults: Annotated[
        bool, typer.Option("--paper-defaults", help="The paper's A100 figures (the default).")
    ] = False,
    turbo: Annotated[
        bool, typer.Option("--turbo", help="Paper figures with SDXL Turbo (k_s 8 s, not 30).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """How long a run takes (supplement J): each term's seconds and share, and the total."""
    from atlantis.report.cost import (
        PAPER_A100,
        PAPER_A100_TURBO,
        coefficients_from_run,
        is_paper_default,
    )
    from atlantis.report.cost import estimate as run_estimate

    if from_run is not None and (paper_defaults or turbo):
        flag = "--paper-defaults" if paper_defaults else "--turbo"
        raise ConfigError(f"--from-run and {flag} both pick the coefficients; give only one "
                          "(--turbo means the paper's SDXL Turbo figures)")  # fmt: skip
    if arm is not None and from_run is None:
        raise ConfigError("--arm picks the stages of --from-run RUN; give --from-run too")
    if from_run is not None:
        coeffs = coefficients_from_run(Run(from_run), arm)
    else:
        coeffs = PAPER_A100_TURBO if turbo else PAPER_A100
        if not paper_defaults and not as_json:
            err_console.print("note: no --from-run RUN given: using the paper's A100 figures")
    result = run_estimate(coeffs, originals, synthetic)
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    table = Table(title=result.label)
    for col in ("term", "what", "coefficient (s)", "count", "seconds", "share"):
        table.add_column(col, justify="left" if col in ("term", "what") else "right")
    for t in result.terms:
        table.add_row(t.key, t.what, _num(t.coefficient), f"{t.count:,}", _num(t.seconds),
                      f"{100 * t.share:.1f}%")  # fmt: skip
    console.print(table)
    top = result.dominant
    console.print(f"[bold]total: {_num(result.total_s)} s ({result.total_hours:.1f} h)[/] for "
                  f"{originals:,} originals + {synthetic:,} synthetic images; largest term "
                  f"{top.key} ({100 * top.share:.1f}%)", soft_wrap=True)  # fmt: skip
    if from_run is None:
        return
    console.print("where each coefficient comes from:")
    for t in result.terms:
        console.print(f"  {t.key}: {t.source}", soft_wrap=True, highlight=False)
    if fallback := [t.key for t in result.terms if is_paper_default(t.source)]:
        console.print(f"[yellow]{', '.join(fallback)}: paper A100 figures, not measured on "
                      "this run: the total mixes two machines[/]", soft_wrap=True)  # fmt: skip


def _num(seconds: float) -> str:
    """Thousands separators for big numbers, enough digits for the tiny measured ones."""
    if seconds == 0 or abs(seconds) >= 100:
        return f"{seconds:,.0f}"
    return f"{seconds:.3g}" if abs(seconds) < 1 else f"{seconds:.2f}"

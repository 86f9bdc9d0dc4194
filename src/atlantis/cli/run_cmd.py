"""``atlantis run CONFIG [--out RUN]``: the whole loop from one YAML file (see pipeline.loop).

The config is validated before anything runs (unknown keys list the valid ones). A run
folder that already holds a config is resumed: its stages are reused where up to date,
and the file given now wins (changed settings re-run only the stages they affect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atlantis.cli.app import SetOpt, app
from atlantis.cli.common import console, friendly_errors, is_tty, save_run_config
from atlantis.store.run import Run


@app.command("run")
@friendly_errors
def run_(
    config: Annotated[Path, typer.Argument(help="YAML config of the whole run.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/<config name>).")
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Ingest -> caption -> insight -> plan -> source -> filter -> train -> evaluate ->
    attack -> report, for every arm of ``loop.arms``; resumes where a run stopped."""
    from atlantis.config import load_config
    from atlantis.demo import print_comparison
    from atlantis.pipeline.loop import run_loop

    cfg = load_config(config, list(set_ or []))
    run = Run(out or Path("runs") / config.stem)
    save_run_config(run, cfg)
    console.rule(f"atlantis run {config} -> {run.root}")
    result = run_loop(run, cfg, progress=is_tty(), say=console.print)
    print_comparison(run, result)

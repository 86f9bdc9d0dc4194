"""``atlantis run CONFIG [--out RUN] [--check]``: the whole loop from one YAML file (see
pipeline.loop).

The config is validated before anything runs (unknown keys list the valid ones);
``--check`` stops there, after checking the data, the pool and the backends too
(``pipeline.loop.check_config``), and prints OK or every problem (exit 2). A run
folder that already holds a config is resumed: its stages are reused where up to date,
and the file given now wins (changed settings re-run only the stages they affect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from atlantis.cli.app import SetOpt, app
from atlantis.cli.common import console, err_console, fail, friendly_errors, is_tty, save_run_config
from atlantis.store.run import Run


@app.command("run")
@friendly_errors
def run_(
    config: Annotated[Path, typer.Argument(help="YAML config of the whole run.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/<config name>).")
    ] = None,
    set_: SetOpt = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Validate the config, data and backends; run nothing."),
    ] = False,
) -> None:
    """Ingest -> caption -> insight -> plan -> source -> filter -> train -> evaluate ->
    attack -> report, for every arm of ``loop.arms``; resumes where a run stopped."""
    from atlantis.config import load_config
    from atlantis.demo import print_comparison
    from atlantis.errors import ConfigError
    from atlantis.pipeline.loop import check_config, run_loop, setting_problems

    cfg = load_config(config, list(set_ or []))  # unknown keys and bad values: one error
    run = Run(out or Path("runs") / config.stem)
    if check:
        _report_check(config, run, check_config(cfg))
        return
    problems = setting_problems(cfg)  # a config no loop can finish: refused before writing
    if problems:
        raise ConfigError("; ".join(problems))
    save_run_config(run, cfg)
    console.rule(f"atlantis run {config} -> {run.root}")
    result = run_loop(run, cfg, progress=is_tty(), say=console.print)
    print_comparison(run, result)


def _report_check(config: Path, run: Run, problems: list[str]) -> None:
    """``OK`` and what the run would do, or every problem (one per line) and exit 2."""
    if problems:
        for problem in problems:
            err_console.print(f"  [red]-[/] {escape(problem)}", highlight=False, soft_wrap=True)
        fail(f"{config}: {len(problems)} problem(s) above; fix them and run the check again")
    resume = " (resumes the run there)" if run.exists() else ""
    console.print(f"OK: {config} is valid: keys, data, pool, backends; `atlantis run {config}` "
                  f"would write {run.root}{resume}", soft_wrap=True, highlight=False)  # fmt: skip

"""CLI commands of the plan stage (registered on the shared app).

``atlantis plan RUN --budget 200`` plans the targeted arm from the insight (``--planner
naive`` the NA baseline at the same budget) and prints the allocation: class, domain,
count and why. ``atlantis replan RUN --arm targeted --from filter`` appends a feedback
round (Algorithm 1 from the filter's stats, or ``--from train``: Algorithm 2 from the
training feedback). ``rules`` is the offline deterministic text backend, not a language
model; ``--llm openai --option model=...`` uses one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from atlantis.cli.app import (
    ArmOpt,
    BackendOptionOpt,
    ConfigOpt,
    ForceOpt,
    LlmOpt,
    MaybeArmOpt,
    RunArg,
    SetOpt,
    app,
)
from atlantis.cli.common import console, friendly_errors, is_tty, run_config, save_run_config
from atlantis.store.run import Run

if TYPE_CHECKING:
    from atlantis.plan.config import PlanConfig
    from atlantis.plan.schema import AllocationRow

MAX_ROWS = 30  # allocation rows printed; plan.json has them all


@app.command()
@friendly_errors
def plan(
    run_dir: RunArg,
    budget: Annotated[int | None, typer.Option(help="Synthetic images to plan.")] = None,
    planner: Annotated[
        str | None, typer.Option(help="targeted (ATLANTIS, reads the insight) or naive (NA).")
    ] = None,
    arm: MaybeArmOpt = None,  # default: the planner's name
    llm: LlmOpt = None,
    option: BackendOptionOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Plan the synthetic images of an arm: which classes and domains, and each image's text."""
    from atlantis.plan.stage import load_summary
    from atlantis.plan.stage import plan as run_plan

    run = Run(run_dir)
    overrides = [*(set_ or []), *([f"plan.budget={budget}"] if budget is not None else [])]
    overrides += [f"plan.llm={llm}"] if llm else []
    overrides += [f"plan.llm_options.{item}" for item in option or []]
    cfg, save = plan_config(run, config, overrides, llm)
    if planner:  # per call, not saved: both arms share the run's plan section
        cfg = _validated(cfg, planner=planner)
    m = run_plan(run, cfg, arm, force=force, progress=is_tty())
    save()
    summary = load_summary(run, arm or cfg.planner)
    print_allocation(summary.rounds[0].allocation, f"{m.stage}, round 0")
    who = ("no text model (fixed template)" if summary.llm is None else
           f"LLM {summary.llm}" if summary.is_language_model else "rules (no LLM)")  # fmt: skip
    console.print(
        f"[bold]{m.stage}[/] ({m.status}): {summary.n_items} images over "
        f"{len(summary.per_class)} classes ({m.counts.get('new_class_items', 0)} of "
        f"new classes), {len(summary.rounds)} round(s); text by {who}",
        soft_wrap=True,
    )
    console.print(escape(summary.policy), soft_wrap=True)
    console.print(f"plan: {run.stage_dir(m.stage) / 'plan.jsonl'}", soft_wrap=True)


@app.command()
@friendly_errors
def replan(
    run_dir: RunArg,
    source: Annotated[str, typer.Option("--from", help="filter (Algorithm 1) or train (Alg. 2).")],
    arm: ArmOpt = "targeted",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Add a feedback round to an arm's plan: more images only for the flagged targets."""
    from atlantis.plan.stage import load_summary
    from atlantis.plan.stage import replan as run_replan

    run = Run(run_dir)
    cfg, save = plan_config(run, config, list(set_ or []), None)
    m = run_replan(run, cfg, arm, source)
    save()
    summary = load_summary(run, arm)
    last = summary.rounds[-1]
    if last.round == 0:
        console.print(f"{m.stage}: no feedback round yet")
        return
    for a in last.alerts:
        mark = "[dim](exempt)[/] " if a.exempt else "[yellow]alert[/] "
        console.print(mark + escape(a.message), soft_wrap=True)
    print_allocation(last.allocation, f"{m.stage}, round {last.round} (from {last.input})")
    console.print(f"[bold]{m.stage}[/]: round {last.round} adds {last.n_items} images"
                  + (f"; {escape(last.note)}" if last.note else "")
                  + f"; {summary.n_items} images in all", soft_wrap=True)  # fmt: skip


def print_allocation(rows: list[AllocationRow], title: str) -> None:
    table = Table(title=title)
    for col, just in (("class", "left"), ("domain", "left"), ("count", "right"),
                      ("reason", "left")):  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows[:MAX_ROWS]:
        table.add_row(escape(r.class_name), escape(r.domain or "-"), str(r.count),
                      escape(r.reason))  # fmt: skip
    if len(rows) > MAX_ROWS:
        table.add_row("...", "", str(sum(r.count for r in rows[MAX_ROWS:])),
                      f"{len(rows) - MAX_ROWS} more rows in plan.json")  # fmt: skip
    console.print(table)


def plan_config(
    run: Run, config: Path | None, overrides: list[str], llm: str | None
) -> tuple[PlanConfig, Callable[[], None]]:
    """The resolved ``plan`` section, and a function that saves it into the run's config:
    called after the stage succeeds, so a rejected option (an unknown class, budget 0) is
    not remembered for the next command. ``--llm`` switching backend drops the saved
    ``llm_options`` of the previous one."""
    cfg = run_config(run, config, overrides, switch=("plan", "llm", "llm_options", llm))
    return cfg.plan, lambda: save_run_config(run, cfg)


def _validated(cfg: PlanConfig, **update: Any) -> PlanConfig:
    from pydantic import ValidationError

    from atlantis.errors import ConfigError
    from atlantis.plan.config import PlanConfig

    try:
        return PlanConfig.model_validate({**cfg.model_dump(), **update})
    except ValidationError as e:
        problems = "; ".join(f"plan.{'.'.join(map(str, x['loc']))}: {x['msg']} (got "
                             f"{x.get('input')!r})" for x in e.errors())  # fmt: skip
        raise ConfigError(f"invalid plan option: {problems}") from None

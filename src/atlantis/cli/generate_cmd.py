"""CLI commands of the generate stage (registered on the shared app).

``atlantis generate RUN --arm targeted`` makes one image per plan item of the arm with the
configured source; ``--source retrieve`` picks real images from a pool instead;
``--executor ray`` spreads the work over Ray actors. ``atlantis sources`` lists the
sources. Source options go in with ``--option`` (``--option steps=4``), which is
``--set generate.options.KEY=VALUE``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from atlantis.cli.app import (
    ArmOpt,
    BackendOptionOpt,
    BatchSizeOpt,
    ConfigOpt,
    DeviceOpt,
    ForceOpt,
    RunArg,
    SetOpt,
    app,
)
from atlantis.cli.common import console, friendly_errors, is_tty, run_config, save_run_config
from atlantis.store.run import Run


@app.command()
@friendly_errors
def generate(
    run_dir: RunArg,
    arm: ArmOpt = "targeted",
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="diffusers:<hub id or folder>, or retrieve (`atlantis sources`)."
        ),
    ] = None,
    executor: Annotated[str | None, typer.Option("--executor", help="local or ray")] = None,
    option: BackendOptionOpt = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Make one image per plan item (content-addressed: resumable, nothing made twice).

    Options belong to a source: when ``--source`` switches to another one, the options
    saved for the previous one are dropped (``steps`` would make ``retrieve`` fail).
    """
    from atlantis.generate.stage import generate as run_generate

    run = Run(run_dir)
    pairs = {"source": source, "executor": executor, "batch_size": batch_size, "device": device}
    overrides = [f"generate.{k}={v}" for k, v in pairs.items() if v is not None]
    overrides += [f"generate.options.{item}" for item in option or []]
    full = run_config(run, config, [*(set_ or []), *overrides],
                      switch=("generate", "source", "options", source))  # fmt: skip
    m = run_generate(run, full.generate, arm, force=force, progress=is_tty())
    save_run_config(run, full)  # only a config that worked becomes the run's config
    c = m.counts
    console.print(f"{m.stage}: {c.get('images', 0)} images for {c.get('planned', 0)} plan items: "
                  f"{c.get('made', 0)} made, {c.get('reused', 0)} reused, "
                  f"{c.get('adopted', 0)} adopted, {c.get('failed', 0)} failed with "
                  f"{m.info.get('source')} ({m.status})")  # fmt: skip
    if "per_image_s" in m.timings:
        console.print(f"{m.timings['per_image_s']:.2f} s per image")
    if c.get("failed"):
        console.print(f"[yellow]{c['failed']} item(s) gave no image[/]; reasons in "
                      f"{run.stage_dir(m.stage) / 'failures.jsonl'}")  # fmt: skip


@app.command()
@friendly_errors
def sources() -> None:
    """List the image sources of the generate stage."""
    from atlantis.generate.registry import list_sources

    for name, help_ in list_sources().items():
        console.print(f"[bold]{name}[/]  {help_}")

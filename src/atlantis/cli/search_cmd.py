"""``atlantis index`` and ``atlantis search``: image search over a gallery with any model.

``index`` embeds a gallery (a folder of images, or one split of an ingested run) with a
model (an exported model folder, a run's trained arm, or an embedder name) and writes a
search index; re-running it embeds only new images. ``search`` prints the nearest gallery
images of query images, as a table, JSON, or an HTML contact sheet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from atlantis.cli.app import (
    BatchSizeOpt,
    DeviceOpt,
    ImageSizeOpt,
    JsonOpt,
    MaybeArmOpt,
    NeighboursOpt,
    TrainSeedOpt,
    app,
)
from atlantis.cli.common import console, friendly_errors, is_tty
from atlantis.errors import ConfigError
from atlantis.store.atomic import atomic_write_text

#: Skipped files listed by name after a build (the meta keeps them all).
SHOW_SKIPPED = 10


@app.command("index")
@friendly_errors
def index_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_OR_RUN",
            help="Exported model folder, run folder (with --arm), train folder, or embedder name.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to create or update.")],
    images: Annotated[
        Path | None, typer.Option("--images", help="Gallery: a folder of images.")
    ] = None,
    run: Annotated[
        Path | None, typer.Option("--run", help="Gallery: a split of this ingested run.")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split of --run.")] = "test",
    arm: MaybeArmOpt = None,
    seed: TrainSeedOpt = None,
    kind: Annotated[
        str, typer.Option("--kind", help="auto (exact below 50k images), flat, ivf or hnsw.")
    ] = "auto",
    image_size: ImageSizeOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = None,
) -> None:
    """Embed a gallery and build a search index (cached, resumable, incremental)."""
    from atlantis.search.index import build_index, gallery_from_folder, gallery_from_run
    from atlantis.search.model_spec import resolve_model

    if (images is None) == (run is None):
        raise ConfigError("give the gallery as either --images FOLDER or --run RUN --split test")
    spec = resolve_model(model, arm=arm, seed=seed)
    skipped: list[tuple[Path, str]] = []
    if images is not None:
        gallery, skipped = gallery_from_folder(images)
    else:
        assert run is not None
        gallery = gallery_from_run(run, split)
    options = {"image_size": image_size} if image_size is not None else {}
    index = build_index(spec, gallery, out, kind=kind, device=device or "auto",
                        batch_size=batch_size, progress=is_tty(), embedder_options=options,
                        skipped=skipped)  # fmt: skip
    m = index.meta
    console.print(f"index {out}: {m.size} images, {m.kind} ({m.distance}, dim {m.dim}), "
                  f"{m.counts.get('embedded', 0)} embedded, {m.counts.get('cached', 0)} from "
                  f"the cache, model {escape(spec)}")  # fmt: skip
    if m.recall_at_10 is not None:
        console.print(f"approximate {m.kind} index: recall@10 {m.recall_at_10:.3f} against "
                      f"exact search ({m.recall_queries} sampled gallery queries)")  # fmt: skip
    if m.skipped:
        console.print(f"[yellow]{len(m.skipped)} unreadable file(s) skipped[/] (all listed in "
                      f"{out / 'index.json'}):")  # fmt: skip
        for path, reason in m.skipped[:SHOW_SKIPPED]:
            console.print(f"  {escape(path)}: {escape(reason)}", soft_wrap=True)
        if len(m.skipped) > SHOW_SKIPPED:
            console.print(f"  ... and {len(m.skipped) - SHOW_SKIPPED} more")


@app.command("search")
@friendly_errors
def search_cmd(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX", help="Index folder.")],
    queries: Annotated[list[Path], typer.Argument(metavar="QUERY_IMAGE...", help="Images.")],
    k: NeighboursOpt = 10,
    as_json: JsonOpt = False,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a contact sheet (self-contained HTML).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Query model (spec or folder); must be the index's own."),
    ] = None,
    device: DeviceOpt = None,
) -> None:
    """The nearest gallery images of each query image."""
    from atlantis.embed.registry import create_embedder
    from atlantis.search.contact_sheet import contact_sheet
    from atlantis.search.index import SearchIndex
    from atlantis.search.model_spec import resolve_model
    from atlantis.search.queries import QueryResult, open_queries, query_label

    index = SearchIndex.load(index_dir)
    images = open_queries(queries)
    if model is not None:
        embedder = create_embedder(resolve_model(model), device=device or "auto",
                                   **index.meta.embedder_options)  # fmt: skip
        index.check_embedder(embedder)
    else:
        embedder = index.embedder(device or "auto")
    note = None
    if k > len(index):
        note = f"k={k} is more than the gallery's {len(index)} images; showing all {len(index)}"
    hits = index.search_images(images, k, embedder=embedder)
    results = [QueryResult(q, query_label(q, index.items), h)
               for q, h in zip(queries, hits, strict=True)]  # fmt: skip
    if html_out is not None:
        atomic_write_text(html_out, contact_sheet(results, images,
                                                  title=f"atlantis search: {index_dir}"))  # fmt: skip
    if as_json:
        print(json.dumps({"index": str(index_dir), "k": min(k, len(index)), "note": note,
                          "results": [r.to_json() for r in results]}, indent=2))  # fmt: skip
        return
    if note:
        console.print(f"[yellow]note:[/] {note}")
    for r in results:
        _print_result(r)
    if html_out is not None:
        console.print(f"contact sheet: {html_out}")


def _print_result(result: object) -> None:
    from atlantis.search.queries import QueryResult

    assert isinstance(result, QueryResult)
    known = f" (label {result.label})" if result.label else ""
    table = Table(title=escape(f"{result.path}{known}"), title_justify="left")
    for col, justify in (("rank", "right"), ("distance", "right"), ("label", "left"),
                         ("path", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for h in result.hits:
        mark = " ✓" if result.same(h) else ""
        table.add_row(str(h.rank), f"{h.distance:.4f}", escape(f"{h.label or ''}{mark}"),
                      escape(str(h.path)))  # fmt: skip
    console.print(table)

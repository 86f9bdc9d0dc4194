"""``atlantis serve INDEX``: the local search page (the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atlantis.cli.app import DeviceOpt, NeighboursOpt, app
from atlantis.cli.common import console, friendly_errors


@app.command()
@friendly_errors
def serve(
    index: Annotated[Path, typer.Argument(help="Index folder written by `atlantis index`.")],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every one).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    k: NeighboursOpt = 10,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest image upload accepted, in MB.")
    ] = 10.0,
    device: DeviceOpt = None,
) -> None:
    """A local web page: drop or pick an image and see its nearest neighbours in INDEX."""
    from atlantis.search.app import serve as run_page

    console.print(f"searching {index} at http://{host}:{port}/  (Ctrl+C stops)")
    run_page(index, host=host, port=port, k=k, device=device or "auto",
             max_upload_mb=max_upload_mb)  # fmt: skip

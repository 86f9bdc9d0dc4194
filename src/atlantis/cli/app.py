"""The typer application and the option types every command module shares.

Command modules (``main``, ``caption_cmd``, ``insight_cmd``...) import ``app`` from here and
register their commands on it; ``atlantis.cli.main`` imports them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="ATLANTIS: targeted, language-guided augmentation for image retrieval.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RunArg = Annotated[Path, typer.Argument(help="Run folder.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set embed.batch_size=64")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Run the stage even if up to date.")]
EmbedderOpt = Annotated[
    str | None, typer.Option("--embedder", "-e", help="See `atlantis embedders`.")
]

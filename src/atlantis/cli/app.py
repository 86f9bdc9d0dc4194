"""The typer application and the option types every command module shares.

Command modules (``main``, ``caption_cmd``, ``insight_cmd``...) import ``app`` from here and
register their commands on it; ``atlantis.cli.main`` imports them all. An option that more
than one command takes is declared here once, so its flag, short name and help read the
same in every ``--help``; a command gives only its own default.
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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
EmbedderOpt = Annotated[
    str | None, typer.Option("--embedder", "-e", help="See `atlantis embedders`.")
]
ImageSizeOpt = Annotated[
    int | None, typer.Option("--image-size", help="Input size of the backbone (speed vs accuracy).")
]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", help="Images per batch.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1, auto")]

_ARM_HELP = (
    "Arm: baseline (real images only), naive (untargeted plan), targeted (ATLANTIS), "
    "oracle (train only: real + the scenario's withheld images)."
)
ArmOpt = Annotated[str, typer.Option("--arm", help=_ARM_HELP)]
#: ``--arm`` where leaving it out means something else (the planner's arm, every arm...).
MaybeArmOpt = Annotated[str | None, typer.Option("--arm", help=_ARM_HELP)]
#: Which training of an arm picks the model (export, index): its seed.
TrainSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed", help="The training with this seed (train/<arm> or train/<arm>/seed-<s>)."
    ),
]
#: How many neighbours a search returns (search, serve); ``--k`` of recall is a list of K.
NeighboursOpt = Annotated[int, typer.Option("--k", help="Neighbours per query.", min=1)]

BackendOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-O", help="Option of the chosen backend, KEY=VALUE (repeat), e.g. top_k=5."
    ),
]
LlmOpt = Annotated[
    str | None, typer.Option("--llm", help="Text backend: rules (offline, no model), openai...")
]
CaptionerOpt = Annotated[str | None, typer.Option("--captioner", help="See `atlantis captioners`.")]

# a dataset on disk and the run folder it goes into (ingest, analyze)
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="imagefolder, manifest, cub, cars196, sop, hf")
]
RootOpt = Annotated[
    Path,
    typer.Option(
        "--root",
        help="Dataset folder (its native layout), or its annotation file "
        "(manifest, images.txt, cars_annos.mat, Ebay_*.txt).",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder to create or update.")]
# the demo's dataset (demo, data fetch-emoji)
VendorsOpt = Annotated[
    str,
    typer.Option(
        "--vendors",
        help="Emoji vendors (the dataset's domains), comma-separated: two or more of "
        "google, twitter, apple, facebook.",
    ),
]

# retrieval evaluation (evaluate, recall)
KOpt = Annotated[str | None, typer.Option("--k", help="Comma-separated K values, e.g. 1,2,4,8.")]
DistanceOpt = Annotated[
    str | None, typer.Option("--distance", help="cosine, euclidean or poincare.")
]

"""``export_run``: a trained arm of a run -> a self-contained model folder (``folder``).

The checkpoint is rebuilt exactly as the ``checkpoint:`` embedder does it, its state dict
is written as safetensors, the optional ONNX / TorchScript copies are verified on a few of
the run's test images (random pixels when the run has none), and ``atlantis-model.json``
records everything a user of the folder needs, without the run: the architecture, the
preprocessing, how to compare vectors, and where the model came from (run, arm, seed,
stage, checkpoint sha256, the stage's test metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from atlantis import __version__
from atlantis.export.folder import (
    FORMAT,
    VERSION,
    WEIGHTS_FILE,
    check_out,
    save_weights,
    staging,
    write_config,
)
from atlantis.export.formats import check_formats, export_format
from atlantis.export.source import TrainedArm, find_trained
from atlantis.store.atomic import file_sha256
from atlantis.train import checkpoint as ckpt
from atlantis.train.model import EmbeddingModel, image_transforms, model_from_info

#: How many images each exported format is verified on.
VERIFY_IMAGES = 4


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    config: dict[str, Any]


def export_run(run_dir: Path | str, arm: str, out: Path | str, *, seed: int | None = None,
               formats: list[str] | tuple[str, ...] = (),
               force: bool = False) -> ExportResult:  # fmt: skip
    """Export ``RUN/train/<arm>`` (or its ``seed``) to the folder ``out``; see the module doc."""
    out = Path(out).expanduser()
    wanted = check_formats(list(formats))  # before any work: unknown names, missing extra
    check_out(out, force)
    trained = find_trained(run_dir, arm, seed)
    state = ckpt.load(trained.checkpoint)
    model = model_from_info(state["model_info"])
    model.load_state_dict(state["model"])
    model.eval()
    with staging(out, force) as tmp:
        model_hash = save_weights(model.state_dict(), tmp / WEIGHTS_FILE)
        exported: dict[str, Any] = {}
        if wanted:
            pixels, source = sample_pixels(trained, model)
            for name in wanted:
                exported[name] = {**export_format(name, model, tmp, pixels), "images": source}
        config = model_config(model, state["model_info"], trained, model_hash, exported)
        write_config(tmp, config)  # last: a folder without it never loads
    return ExportResult(out, config)


def model_config(model: EmbeddingModel, info: dict[str, Any], trained: TrainedArm,
                 model_hash: str, formats: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The content of ``atlantis-model.json`` (``info``: the checkpoint's ``model_info``)."""
    metrics = trained.metrics or {}
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_hash": model_hash,
        "weights": WEIGHTS_FILE,
        "distance": model.distance,
        "curvature": float(model.curvature),
        "embedding_dim": int(info["embedding_dim"]),
        "image_size": int(model.image_size),
        "interpolation": model.interpolation,
        "mean": list(info["mean"]),
        "std": list(info["std"]),
        "input": "RGB pixels [N, 3, image_size, image_size], uint8 or float in [0, 1], resized "
        "to image_size * 256 / 224 and centre-cropped; the model normalises itself",
        "model_info": info,
        "formats": formats,
        "provenance": {
            "run": str(trained.run.root.resolve()),
            "arm": trained.arm,
            "seed": trained.seed,
            "stage": trained.stage,
            "checkpoint": trained.checkpoint.name,
            "checkpoint_sha256": file_sha256(trained.checkpoint),
            "best_epoch": metrics.get("best_epoch"),
            "best_val_R@1": metrics.get("best_val_R@1"),
            "test_metrics": metrics.get("test"),
            "atlantis_version": __version__,
        },
    }


def sample_pixels(trained: TrainedArm, model: EmbeddingModel) -> tuple[torch.Tensor, str]:
    """``VERIFY_IMAGES`` of the run's test images (eval transform), else seeded random pixels."""
    from atlantis.data.ingest import load_ingested
    from atlantis.data.paths import image_paths
    from atlantis.embed.preprocess import open_image_rgb
    from atlantis.errors import AtlantisError

    try:
        records, _ = load_ingested(trained.run)
        test = [r for r in records if r.split == "test"][:VERIFY_IMAGES]
        paths = image_paths(trained.run, test) if test else []
        transform = image_transforms(model.image_size, model.interpolation, train=False)
        images = [transform(open_image_rgb(p)) for p in paths]
    except (AtlantisError, OSError):
        images = []
    if len(images) >= 2:
        return torch.stack(images), f"{len(images)} test images of the run"
    g = torch.Generator().manual_seed(0)
    size = model.image_size
    pixels = torch.randint(0, 256, (VERIFY_IMAGES, 3, size, size), generator=g, dtype=torch.uint8)
    return pixels, f"{VERIFY_IMAGES} images of random pixels (the run has no test images)"

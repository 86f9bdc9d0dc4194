"""What ``atlantis.load_model(DIR)`` returns: an exported model, ready to embed images.

The folder is checked before anything is built (format, version, the weights' sha256), the
architecture is rebuilt offline from ``model_info`` (no hub download: the weights come from
``model.safetensors``), and ``embed`` applies the same eval transform as training's test
report and the ``checkpoint:`` embedder (resize to ``size * 256 / 224``, centre crop), so
the vectors match the run's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlantis.embed.base import resolve_device, torch_embed
from atlantis.embed.preprocess import open_image_rgb
from atlantis.export.folder import (
    ModelCard,
    ModelFolderError,
    checked_weights,
    load_weights,
    read_config,
)
from atlantis.train.model import EmbeddingModel, image_transforms, model_from_info


@dataclass
class ExportedModel(ModelCard):
    """An exported model: the ``EmbeddingModel`` (eval mode) and its ``atlantis-model.json``."""

    model: EmbeddingModel
    config: dict[str, Any]
    folder: Path
    device: str = "cpu"

    def embed(self, images: Sequence[Image.Image | str | Path], batch_size: int = 32) -> np.ndarray:
        """PIL images or image paths -> float32 ``[N, dim]``, rows in input order."""
        transform = image_transforms(self.image_size, self.config["interpolation"], train=False)
        out = []
        for start in range(0, len(images), batch_size):
            batch = [im if isinstance(im, Image.Image) else open_image_rgb(im)
                     for im in images[start : start + batch_size]]  # fmt: skip
            out.append(torch_embed(self.model, transform, batch, self.device))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def load_model(folder: str | Path, device: str = "cpu") -> ExportedModel:
    """Load a folder written by ``atlantis export`` (``device``: cpu, cuda, auto...).

    Raises ``ModelFolderError`` (a ``ConfigError``) for a folder without
    ``atlantis-model.json``, a format version this release does not read, or weights whose
    sha256 is not the recorded ``model_hash``.
    """
    folder = Path(folder).expanduser()
    config = read_config(folder)
    weights = checked_weights(folder, config)
    model = model_from_info(config["model_info"])
    try:
        model.load_state_dict(load_weights(weights))
    except RuntimeError as exc:  # only reachable when the JSON's model_info was edited
        raise ModelFolderError(f"{weights}: does not fit the architecture in the JSON "
                               f"({str(exc).splitlines()[0]})") from None  # fmt: skip
    dev = resolve_device(device)
    return ExportedModel(model.eval().to(dev), config, folder.resolve(), dev)

"""An exported model as an embedder: ``model:<folder made by atlantis export>``.

The counterpart of ``checkpoint:`` for a model that left its run: ``atlantis embed`` /
``atlantis evaluate -e model:DIR`` score it like any backbone, and the search index records
``key`` as the model's identity. The key is the folder's ``model_hash`` (the sha256 of its
weights, checked when the model loads), so a re-export of other weights never serves
cached vectors of the old ones, while moving or copying the folder keeps its cache.

Construction reads only ``atlantis-model.json`` (a bad folder fails at once, in one line);
torch and the weights load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlantis.embed.base import Embedder, torch_embed
from atlantis.errors import ConfigError
from atlantis.export.folder import ModelCard, read_config

#: Bump when the feature extraction changes, so cached vectors are not reused.
KEY_VERSION = 1


class ExportedEmbedder(ModelCard, Embedder):
    """The embeddings of an exported model, with its own eval preprocessing."""

    def __init__(self, path: str | Path, *, image_size: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        self.path = Path(path).expanduser().resolve()
        self.config = read_config(self.path)
        exported = self.image_size
        if image_size not in (None, exported):
            raise ConfigError(
                f"{self.path} was trained at {exported} px; embed with it at that size "
                f"(drop image_size={image_size} or set it to {exported})"
            )
        self._model: Any = None
        self._transform: Any = None

    @property
    def key(self) -> str:
        return f"model v{KEY_VERSION} hash={self.model_hash}"

    def _load(self) -> None:
        from atlantis.export.model import load_model
        from atlantis.train.model import image_transforms

        loaded = load_model(self.path, self.device)  # checks the weights' sha256
        if loaded.model_hash != self.config["model_hash"]:
            raise ConfigError(f"{self.path} was re-exported while in use; create the embedder "
                              "again")  # fmt: skip
        self._model = loaded.model
        self._transform = image_transforms(loaded.image_size, self.config["interpolation"],
                                           train=False)  # fmt: skip

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        return torch_embed(self._model, self._transform, images, self.device)

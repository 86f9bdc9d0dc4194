"""A trained model as an embedder: ``checkpoint:<best.pt, or a train stage folder>``.

This is how the existing embed / evaluate / filter stages score a model the train stage
made, e.g. ``atlantis evaluate RUN -e checkpoint:RUN/train/baseline --distance poincare``.
A folder means its ``best.pt`` (the model selected on validation R@1).

The checkpoint carries everything needed offline: the architecture description (no hub
download; the weights come from the file), the input size and the normalisation. The
cache key holds the checkpoint's content fingerprint, so retraining in place never serves
stale vectors. ``distance`` / ``curvature`` say how the vectors must be compared: a
``poincare`` head's vectors live in the Poincaré ball.

``atlantis.embed.registry`` registers it (importing this module on first use); torch is
imported only when the model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlantis.embed.base import Embedder, torch_embed
from atlantis.embed.cache import weights_fingerprint
from atlantis.errors import ConfigError

#: Bump when the feature extraction changes, so cached vectors are not reused.
KEY_VERSION = 1
BEST = "best.pt"


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a train stage folder's ``best.pt``; ConfigError when missing."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / BEST
    if not p.is_file():
        raise ConfigError(
            f"checkpoint {path!r} not found (give a .pt file or a train stage folder holding "
            f"{BEST}, e.g. RUN/train/baseline)"
        )
    return p.resolve()


class CheckpointEmbedder(Embedder):
    """The embeddings of a model trained by ``atlantis train``, with its eval preprocessing."""

    def __init__(self, path: str | Path, *, image_size: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        self.path = resolve_checkpoint(path)
        self.requested_size = image_size
        self._info: dict[str, Any] | None = None
        self._model: Any = None
        self._transform: Any = None

    @property
    def info(self) -> dict[str, Any]:
        """The checkpoint's model description (reads the file once)."""
        if self._info is None:
            from atlantis.train.checkpoint import load

            self._info = dict(load(self.path)["model_info"])
            trained = self._info["image_size"]
            if self.requested_size not in (None, trained):
                raise ConfigError(
                    f"{self.path} was trained at {trained} px; evaluate it at that size "
                    f"(drop image_size={self.requested_size} or set it to {trained})"
                )
        return self._info

    @property
    def key(self) -> str:
        return f"checkpoint v{KEY_VERSION} weights={weights_fingerprint(self.path)}"

    @property
    def dim(self) -> int:
        return int(self.info["embedding_dim"])

    @property
    def distance(self) -> str:
        """How to compare the vectors: ``poincare`` (ball head) or ``cosine`` (sphere head)."""
        return "poincare" if self.info["head"] == "poincare" else "cosine"

    @property
    def curvature(self) -> float:
        return float(self.info.get("curvature") or 0.1)

    def _load(self) -> None:
        from atlantis.train.checkpoint import load_model
        from atlantis.train.model import image_transforms

        info = self.info
        self._model = load_model(self.path, self.device)
        self._transform = image_transforms(info["image_size"], info["interpolation"], train=False)

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        return torch_embed(self._model, self._transform, images, self.device)

"""Hugging Face vision models: ``transformers:<hub id or local folder>``.

Works with DINOv2 (``transformers:facebook/dinov2-small``), ViT, and CLIP/SigLIP models
(``transformers:openai/clip-vit-base-patch32``), each preprocessed by its own image
processor. ``local_files_only=True`` forbids any network access (air-gapped machines).

Pooling (``pooling=``):

* ``"auto"`` (default): the model's image embedding when it has one (CLIP-style
  ``get_image_features``), else ``pooler_output``, else the CLS token. A pooler whose
  weights are *not* in the checkpoint (e.g. DINO ViTs loaded as ``ViTModel``) is randomly
  initialised by transformers, so it is skipped in favour of the CLS token.
* ``"cls"``: the first token of the last hidden state.
* ``"mean"``: the mean of the other tokens (patch tokens) of the last hidden state.

``transformers`` is an optional extra (``atlantis-augment[hf]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from atlantis.embed.base import Embedder, import_optional
from atlantis.embed.cache import weights_identity
from atlantis.embed.preprocess import to_rgb
from atlantis.errors import ConfigError

#: Bump when the feature extraction changes, so cached vectors are not reused.
KEY_VERSION = 1
POOLINGS = ("auto", "cls", "mean")


class TransformersEmbedder(Embedder):
    """A transformers vision model's pooled image features, with its own image processor."""

    def __init__(
        self,
        model: str,
        *,
        local_files_only: bool = False,
        pooling: str = "auto",
        revision: str | None = None,
        image_size: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self._tf = import_optional(
            "transformers", "transformers", "hf", "the transformers embedder"
        )
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
        if image_size is not None:
            raise ConfigError(
                "the transformers embedder takes its input size from the model's image "
                "processor; remove image_size (or save a processor with the size you want)"
            )
        self.source = model
        self.local_files_only = local_files_only
        self.pooling = pooling
        self.revision = revision
        self._model: Any = None
        self._processor: Any = None
        self._use_pooler = False
        self._dim: int | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    @property
    def key(self) -> str:
        weights = weights_identity(self.source, self.revision)
        return f"transformers v{KEY_VERSION} weights={weights} pooling={self.pooling}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._probe_dim()
        return self._dim

    def _load(self) -> None:
        kwargs = {"local_files_only": self.local_files_only, "revision": self.revision}
        try:
            model, info = self._tf.AutoModel.from_pretrained(
                self.source, output_loading_info=True, **kwargs
            )
            self._processor = self._tf.AutoImageProcessor.from_pretrained(self.source, **kwargs)
        except OSError as exc:
            where = "folder" if self.is_local else "hub id"
            raise ConfigError(f"cannot load transformers {where} {self.source!r}: {exc}") from exc
        missing = info.get("missing_keys") or []
        # A pooler created from scratch (weights absent from the checkpoint) is noise.
        self._use_pooler = not any(k.split(".")[0] == "pooler" for k in missing)
        self._model = model.eval().to(self.device)

    def _pool(self, pixels: torch.Tensor) -> torch.Tensor:
        model = self._model
        if self.pooling == "auto" and hasattr(model, "get_image_features"):
            out = model.get_image_features(pixel_values=pixels)
            # transformers < 5 returns a tensor, >= 5 an output object holding the projection.
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        tower = getattr(model, "vision_model", model)  # CLIP-style models: the image tower
        out = tower(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        if self.pooling == "auto" and pooled is not None and self._use_pooler:
            return pooled
        hidden = out.last_hidden_state
        return hidden[:, 1:].mean(dim=1) if self.pooling == "mean" else hidden[:, 0]

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        inputs = self._processor(images=[to_rgb(im) for im in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device)
        with torch.inference_mode():
            features = self._pool(pixels)
        return features.float().cpu().numpy()

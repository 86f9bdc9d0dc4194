"""Any timm model as an embedder: ``timm:<model name>``, e.g. ``timm:vit_small_patch16_224.dino``.

The model is built with ``num_classes=0``, so its forward pass returns the pooled
pre-classifier features. Preprocessing is timm's own evaluation transform for that model's
pretrained config (input size, crop fraction, interpolation, mean/std), so each checkpoint is
fed the pixels it was trained on.

Weights (``pretrained``):

* ``True``: the published weights of that name (timm downloads them once into its cache);
* a file path: a local checkpoint, loaded through timm's own loader (which also converts
  foreign formats, e.g. original DINO checkpoints);
* ``False``: random weights from a fixed seed -- only for tests and smoke runs, but still
  deterministic, so the cache key stays truthful.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import timm
import timm.data
import torch
from PIL import Image
from timm.models import get_pretrained_cfg

from atlantis.embed.base import Embedder, torch_embed
from atlantis.embed.cache import weights_fingerprint
from atlantis.errors import ConfigError

#: Bump when the feature extraction changes, so cached vectors are not reused.
KEY_VERSION = 1
RANDOM_INIT_SEED = 0


class TimmEmbedder(Embedder):
    """A timm backbone's pooled features, with the model's own eval preprocessing."""

    def __init__(
        self,
        model_name: str,
        *,
        pretrained: bool | str | Path = True,
        image_size: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if not timm.is_model(model_name):
            close = timm.list_models(f"*{model_name.split('.')[0]}*")[:8]
            hint = f"; similar names: {', '.join(close)}" if close else ""
            raise ConfigError(f"timm has no model {model_name!r}{hint}")
        if not isinstance(pretrained, bool) and not Path(pretrained).is_file():
            raise ConfigError(f"timm checkpoint file not found: {pretrained}")
        self.model_name = model_name
        self.pretrained = pretrained
        self.image_size = image_size
        self._cfg = get_pretrained_cfg(model_name)
        self._model: torch.nn.Module | None = None
        self._transform: Any = None
        self._dim: int | None = None

    def data_config(self) -> dict[str, Any]:
        """Resize/crop/normalisation settings, resolved without building the model."""
        cfg = timm.data.resolve_data_config(
            {}, pretrained_cfg=self._cfg.to_dict() if self._cfg is not None else {}
        )
        if self.image_size is not None:
            cfg["input_size"] = (3, self.image_size, self.image_size)
        return cfg

    def _weights_tag(self) -> str:
        if self.pretrained is False:
            return f"random(seed={RANDOM_INIT_SEED})"
        if self.pretrained is True:
            cfg = self._cfg
            return f"hub:{cfg.architecture}.{cfg.tag}" if cfg is not None else "hub"
        return f"file:{weights_fingerprint(self.pretrained)}"

    @property
    def key(self) -> str:
        cfg = self.data_config()
        pre = " ".join(f"{k}={cfg[k]}" for k in sorted(cfg))
        return f"timm:{self.model_name} v{KEY_VERSION} weights={self._weights_tag()} {pre}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._probe_dim()
        return self._dim

    def _load(self) -> None:
        kwargs: dict[str, Any] = {"num_classes": 0}
        if self.image_size is not None and self._cfg is not None and self._cfg.fixed_input_size:
            kwargs["img_size"] = self.image_size  # ViTs: resample position embeddings
        if isinstance(self.pretrained, bool):
            kwargs["pretrained"] = self.pretrained
        else:
            kwargs["pretrained"] = True
            kwargs["pretrained_cfg_overlay"] = {"file": str(self.pretrained)}
        # Seeded so that random (and any not-loaded) parameters are the same in every process.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = timm.create_model(self.model_name, **kwargs)
        self._model = model.eval().to(self.device)
        self._transform = timm.data.create_transform(**self.data_config(), is_training=False)

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        assert self._model is not None
        return torch_embed(self._model, self._transform, images, self.device)

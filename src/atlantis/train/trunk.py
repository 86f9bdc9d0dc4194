"""Training on cached trunk outputs: the frozen part of the backbone runs once per image.

When only the last blocks and the head train and augmentation is off, the frozen trunk
(stem + first blocks, in eval mode: fixed BatchNorm statistics, no dropout) maps each image
to the same tensor in every epoch. ``TrainConfig.cache_trunk`` computes those tensors once,
from each image's eval crop, and trains the rest on them: the same computation as training
the whole model without augmentation (tested to match), at a fraction of the cost. That is
what makes the offline demo train in minutes on a CPU. Memory: one trunk output per
training image (EfficientNet-Lite0 at 128 px, last 2 blocks trained: 192x4x4 floats, 12 kB).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from atlantis.errors import ConfigError
from atlantis.train.data import LabelledImages
from atlantis.train.inference import embed_paths
from atlantis.train.model import EmbeddingModel
from atlantis.train.runtime import Runtime


def split_backbone(model: EmbeddingModel, trainable_blocks: int) -> tuple[Any, Any]:
    """``(trunk, rest)`` with ``rest(trunk(x)) == backbone(x)``; the trunk is what is frozen.

    For training on cached trunk outputs (``TrainConfig.cache_trunk``): with the trunk frozen
    (eval mode) and augmentation off, its output for an image never changes, so computing it
    once is exact. Supported: EfficientNet-Lite and timm VisionTransformers.
    """
    backbone, kind = model.backbone, model.info.get("kind")
    if kind == "efficientnet":
        net = backbone.net
        blocks, k = list(net._blocks), len(net._blocks) - trainable_blocks
        rate = net._global_params.drop_connect_rate or 0.0

        def run_blocks(x: Tensor, lo: int, hi: int) -> Tensor:
            for i in range(lo, hi):
                x = blocks[i](x, drop_connect_rate=rate * i / len(blocks) if rate else None)
            return x

        def trunk(x: Tensor) -> Tensor:
            return run_blocks(net._swish(net._bn0(net._conv_stem(x))), 0, k)

        def rest(h: Tensor) -> Tensor:
            x = run_blocks(h, k, len(blocks))
            return net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))

        return trunk, rest
    if kind == "timm" and hasattr(backbone, "_pos_embed") and hasattr(backbone, "blocks"):
        vit, k = backbone, len(backbone.blocks) - trainable_blocks

        def trunk(x: Tensor) -> Tensor:
            x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
            return vit.blocks[:k](x)

        def rest(h: Tensor) -> Tensor:
            return vit.forward_head(vit.norm(vit.blocks[k:](h)), pre_logits=True)

        return trunk, rest
    raise ConfigError(
        f"cache_trunk supports EfficientNet-Lite and timm ViT backbones, not "
        f"{model.info.get('name')!r}; set cache_trunk=false"
    )


#: Images per cache shard when trunk outputs are cached on disk.
CACHE_CHUNK = 512


class FromTrunk(nn.Module):
    """Cached trunk outputs -> embeddings: the trainable rest of a model as one module.

    One module, so that DDP wraps (and synchronises) exactly what trains.
    """

    def __init__(self, model: EmbeddingModel, rest: Any) -> None:
        super().__init__()
        self.model = model
        self._rest = rest

    def forward(self, h: Tensor) -> Tensor:
        return self.model.embed_features(self._rest(h))


def trunk_key(model: EmbeddingModel, trainable_blocks: int, pretrained: bool | str,
              seed: int) -> str:  # fmt: skip
    """What a trunk output depends on besides the image: weights, depth, crop and resize.

    Pretrained weights (``True``: packaged or hub) are named as such, a checkpoint file by
    its content digest, and seeded random weights (``False``) by the seed that drew them,
    so two seeds never share outputs while a trained model (its trunk still frozen at the
    start weights) finds the outputs its training cached.
    """
    from atlantis.embed.cache import weights_fingerprint

    if pretrained is True:
        weights = "pretrained"
    elif pretrained is False:
        weights = f"random-seed-{seed}"
    else:
        weights = f"file:{weights_fingerprint(pretrained)}"
    info = model.info
    return (f"trunk-v1:{info.get('kind')}:{info.get('name')}:{weights}:size={model.image_size}:"
            f"{model.interpolation}:frozen-all-but={trainable_blocks}")  # fmt: skip


def trunk_outputs(model: EmbeddingModel, trunk: Callable[[Tensor], Tensor],
                  images: LabelledImages, *, batch_size: int = 64, num_workers: int = 0,
                  runtime: Runtime | None = None, cache_dir: Path | None = None,
                  key: str | None = None) -> Tensor:  # fmt: skip
    """The trunk's output for every image's eval crop (on the CPU).

    With ``cache_dir`` and ``key`` the outputs are kept in a content-addressed
    ``EmbeddingCache`` (by image bytes): every arm and seed of a run trains on the same
    frozen trunk, so each image goes through it once per run instead of once per training.
    """
    forward = lambda pixels: trunk(model.normalize(pixels))  # noqa: E731
    opts: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers,
                            "runtime": runtime, "forward": forward}  # fmt: skip
    if cache_dir is None or key is None or not len(images):
        return torch.from_numpy(embed_paths(model, images.paths, **opts))
    from atlantis.embed.cache import EmbeddingCache, content_hash

    cache = EmbeddingCache(cache_dir, key)
    hashes = [content_hash(p) for p in images.paths]
    found = cache.get_many(hashes)
    todo = sorted({h: i for i, h in enumerate(hashes) if h not in found}.values())
    shape = _trunk_shape(model, trunk)
    for lo in range(0, len(todo), CACHE_CHUNK):  # one durable shard per chunk: resumable
        chunk = todo[lo : lo + CACHE_CHUNK]
        fresh = embed_paths(model, [images.paths[i] for i in chunk], **opts)
        cache.put_many([hashes[i] for i in chunk], fresh.reshape(len(chunk), -1))
        found.update(zip((hashes[i] for i in chunk), fresh.reshape(len(chunk), -1), strict=True))
    flat = np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
    return torch.from_numpy(flat.reshape(len(hashes), *shape))


def _trunk_shape(model: EmbeddingModel, trunk: Callable[[Tensor], Tensor]) -> tuple[int, ...]:
    """The shape of one trunk output (a dry run on one blank image)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        size = model.image_size
        out = trunk(model.normalize(torch.zeros(1, 3, size, size, device=device)))
    model.train(was_training)
    return tuple(out.shape[1:])


def embed_trunk_outputs(net: FromTrunk, features: Tensor, batch_size: int = 64) -> np.ndarray:
    """Embeddings of cached trunk outputs, in eval mode without gradients."""
    was_training, device = net.training, next(net.parameters()).device
    net.eval()
    with torch.inference_mode():
        out = [net(h.to(device)).float().cpu() for h in features.split(batch_size)]
    net.train(was_training)
    return torch.cat(out).numpy()


def embed_via_trunk(model: EmbeddingModel, images: LabelledImages, trainable_blocks: int,
                    pretrained: bool | str, seed: int, *, cache_dir: Path | None, batch_size: int = 64,
                    num_workers: int = 0, runtime: Runtime | None = None) -> np.ndarray:  # fmt: skip
    """Embeddings of ``images`` computed as ``rest(trunk(x))``, the trunk's outputs cached.

    Equal to ``embed_paths(model, ...)`` (the frozen trunk is the pretrained one), but each
    image's trunk output is reused from training and from the other arms of the run.
    """
    trunk, rest = split_backbone(model, trainable_blocks)
    feats = trunk_outputs(model, trunk, images, batch_size=batch_size, num_workers=num_workers,
                          runtime=runtime, cache_dir=cache_dir,
                          key=trunk_key(model, trainable_blocks, pretrained, seed))  # fmt: skip
    return embed_trunk_outputs(FromTrunk(model, rest), feats, batch_size)

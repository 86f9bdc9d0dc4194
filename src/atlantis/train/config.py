"""The ``train`` section of a run's config: the DML recipe, and presets that fill it.

Defaults follow hyp_metric / ATLANTIS (Poincaré head, c = 0.1, clip_r = 2.3, pairwise
cross-entropy with tau = 0.2, AdamW, grad clip 3, m samples per class) except the backbone,
which defaults to the offline EfficientNet-Lite0. ``PRESETS`` hold whole recipes:

* ``dino``: the paper's setting (DINO ViT-S/16, lr 1e-5, patch embedding frozen, 224 px).
  The batch is 900 = 100 classes x 9 on the paper's GPUs; smaller datasets get
  ``m_per_class x classes`` (see ``data.EpochBatchSampler``).
* ``demo``: a CPU recipe for the offline emoji demo, minutes on 2 cores (see its comment).

**Epochs or steps.** By default an epoch is one pass over the training pool, ``pool //
batch_size`` optimiser steps, so an arm with more (synthetic) images takes more steps.
``steps: N`` fixes the number of optimiser steps instead, whatever the pool's size: training
is then ``epochs`` *validation periods* splitting the N steps as evenly as possible (period
``e`` ends after ``e * N // epochs`` steps: ``ceil(N / epochs)`` or one fewer each); the LR
schedule runs over the N steps (``warmup_epochs`` counts periods of ``N / epochs`` steps),
``eval_every`` counts periods, ``max_epochs_this_call`` (``--epochs-this-call``) pauses
after that many periods. Batches are drawn from consecutive seeded passes over the pool,
so a period may end inside a pass; two arms with the same ``steps`` and ``epochs`` get the
same steps, LR at every step and validation points (``atlantis run`` sets it for every arm
of a comparison, see ``atlantis.pipeline.loop.comparison_steps``). With ``N = epochs x
(pool // batch_size)`` steps mode trains exactly as the epoch mode does.

A config names one with ``train: {preset: demo}`` (``with_preset``): the preset's keys
first, the section's own keys on top; ``--set train.preset=demo`` lays it at that point.

Like ``InsightConfig`` this does not subclass ``atlantis.config.Section`` (that module
imports this one to build ``AtlantisConfig``); the model config is the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from atlantis.errors import ConfigError

#: Keys that change speed or logging, not the trained weights: out of every config hash.
RUNTIME_KEYS = frozenset({"device", "num_workers", "eval_batch_size", "tensorboard"})
#: Keys used only after training (feedback): out of the checkpoint's hash, so changing them
#: re-runs the stage's last step without refusing the finished checkpoints.
POST_TRAINING_KEYS = frozenset({"feedback_k", "feedback_tau"})


class TrainConfig(BaseModel):
    """Deep metric learning on real (+ kept synthetic) training images."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # model
    backbone: str = "efficientnet-lite0"  # or timm:<name>, transformers:<id or folder>
    pretrained: bool | str = True  # timm: True, False (seeded random) or a checkpoint file
    backbone_options: dict[str, Any] = Field(default_factory=dict)  # timm: e.g. drop_path_rate
    image_size: int | None = Field(None, ge=16)  # None: the backbone's native size
    embedding_dim: int = Field(128, gt=0)
    head: Literal["sphere", "poincare"] = "poincare"
    head_init: Literal["default", "orthogonal"] = "default"  # orthogonal: start as the backbone
    curvature: float = Field(0.1, gt=0)
    clip_r: float | None = Field(2.3, gt=0)
    trainable_blocks: int | None = Field(None, ge=0)  # None: whole backbone; 0: head only
    freeze_patch_embed: bool = True  # ViTs (hyp_metric freezes it); ignored by CNNs
    # loss
    loss: str = "pairwise_ce"  # or pml:<LossName>, e.g. pml:MultiSimilarityLoss
    loss_options: dict[str, Any] = Field(default_factory=dict)
    tau: float = Field(0.2, gt=0)  # pairwise_ce temperature
    miner: str | None = None  # pml:<MinerName>, e.g. pml:TripletMarginMiner
    miner_options: dict[str, Any] = Field(default_factory=dict)
    # optimisation
    lr: float = Field(1e-5, gt=0)  # backbone (1e-5 for DINO, 3e-5 for supervised ViTs)
    head_lr: float | None = Field(None, gt=0)  # linear head + loss parameters; None: lr
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float | None = Field(3.0, gt=0)
    scheduler: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0)
    epochs: int = Field(50, gt=0)  # passes over the pool; with steps: validation periods
    # Optimiser steps in all (None: epochs x pool // batch_size); see "Epochs or steps" above
    steps: int | None = None
    batch_size: int = Field(900, gt=1)  # per process
    m_per_class: int = Field(9, ge=2)
    augment: bool = True  # RandomResizedCrop(0.2-1) + flip; False: the eval crop
    # Compute the frozen trunk's output once per image and train only the rest on it: exact
    # when augment is false (the trunk is frozen, in eval mode); for CPU runs on small data.
    cache_trunk: bool = False
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"  # auto: off on CPU
    synthetic_ratio: float | None = Field(None, ge=0, le=1)
    seed: int = 0
    # model selection on the validation split (never on test)
    eval_every: int = Field(1, gt=0)
    # training feedback (Algorithm 2)
    feedback_k: int = Field(5, ge=0)
    feedback_tau: float = Field(0.5, ge=0, le=1)
    # runtime
    device: str = "auto"
    num_workers: int | None = Field(None, ge=0)  # None: loader_workers() decides per device
    eval_batch_size: int = Field(64, gt=0)
    tensorboard: bool = True  # when the tensorboard package is installed

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """``preset: NAME`` in the section: the preset's keys, the section's own on top."""
        return with_preset(data) if isinstance(data, Mapping) and "preset" in data else data

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"train.steps ({self.steps}) must be 1 or more optimiser steps "
                             "(or unset: epochs x pool // batch_size)")  # fmt: skip
        if self.steps is not None and self.steps < self.epochs:
            # each validation period takes at least one step: fewer steps than periods
            # would validate the same weights twice, or silently drop periods
            raise ValueError(
                f"train.steps ({self.steps}) is fewer than train.epochs ({self.epochs}): with "
                "train.steps set, train.epochs is the number of validation periods the steps "
                "are split into, each of at least one step; lower train.epochs or raise "
                "train.steps"
            )
        if self.batch_size % self.m_per_class:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of m_per_class "
                f"({self.m_per_class}): each batch holds batch_size / m_per_class classes"
            )
        if self.cache_trunk and (self.augment or self.trainable_blocks is None):
            raise ValueError(
                "cache_trunk needs augment=false (each image's trunk output is computed once, "
                "from its eval crop) and trainable_blocks set (what is not trained is cached)"
            )
        return self

    def training_dict(self) -> dict[str, Any]:
        """The keys that determine the trained weights (what a checkpoint must match)."""
        data = self.model_dump(mode="json")
        for key in RUNTIME_KEYS | POST_TRAINING_KEYS | self.unset_keys():
            data.pop(key, None)
        return data

    def loader_workers(self, device_type: str) -> int:
        """Data-loading processes: ``num_workers`` when set; else 0 on the CPU (workers would
        compete with the model for the same cores) and up to 8 (one per core, one left for
        the main process) beside a GPU, where decoding JPEGs in the main process makes
        training data-bound (about 4-5 s per 810-image step against 0.3 s of H100 compute)."""
        if self.num_workers is not None:
            return self.num_workers
        if device_type != "cuda":
            return 0
        return max(0, min(8, (os.cpu_count() or 1) - 1))

    def unset_keys(self) -> set[str]:
        """Keys added after runs existed whose unset value changes nothing: left out of the
        hashes, so a checkpoint or stage from before them still matches (``steps``: None)."""
        return {"steps"} if self.steps is None else set()


PRESETS: dict[str, dict[str, Any]] = {
    "dino": {
        "backbone": "timm:vit_small_patch16_224.dino",
        "image_size": 224,
        "lr": 1e-5,
        "freeze_patch_embed": True,
        "head_init": "orthogonal",  # hyp_metric's: orthogonal weight, zero bias
        "batch_size": 900,
        "m_per_class": 9,
        "epochs": 50,
    },
    # CPU, 2 cores, ~2,000 emoji, seconds per training: EfficientNet-Lite0 frozen, its
    # full-width embedding head trained (it starts as a rotation of the backbone's features,
    # so step 0 ranks exactly like the untrained backbone), at 128 px on cached trunk outputs (no augmentation, so the caching is exact; the
    # outputs are shared by every arm and seed of a run). Measured on the demo's scenario:
    # the last 2 blocks at lr 1e-4 for ~100 steps learnt little (baseline +1.9 R@1 over the
    # untrained model) and left the oracle 0.9 points of headroom; the head at lr 1e-3 for
    # 600 steps (``demo.DEMO_STEPS``) trains 5x faster and leaves 4.1.
    "demo": {
        "backbone": "efficientnet-lite0",
        "image_size": 128,
        "embedding_dim": 1280,
        "head_init": "orthogonal",
        "trainable_blocks": 0,
        "augment": False,
        "cache_trunk": True,
        "lr": 1e-3,
        "epochs": 10,
        "batch_size": 64,
        "m_per_class": 4,
        "device": "cpu",
    },
}


def with_preset(section: Mapping[str, Any]) -> dict[str, Any]:
    """A ``train`` section whose ``preset: NAME`` is replaced by the preset's keys, the
    section's own keys on top (``{preset: demo, epochs: 3}``: the demo recipe, 3 epochs).

    A run YAML can then name a recipe instead of copying its keys by hand.
    """
    data = dict(section)
    name = data.pop("preset", None)
    if name is None:
        return data
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(
            f"train.preset: unknown train preset {name!r}; valid: {', '.join(PRESETS)}"
        )
    return {**PRESETS[name], **data}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A ``TrainConfig`` from a named preset, with ``overrides`` on top."""
    return TrainConfig(**with_preset({"preset": name, **overrides}))

"""The training loop: epochs of m-per-class batches, validation R@1, checkpoints, resume.

Epoch 0 is the untrained model (head initialised, nothing learnt): it is evaluated on the
validation split and is the first ``best.pt``, so "training helped" is always measured
against where it started. Epochs 1..E each run one pass of seeded batches, then (every
``eval_every`` epochs and at the last) score Recall@K on the **validation** split with the
head's own distance; a better val R@1 rewrites ``best.pt``. The test split never enters
this module.

Steps mode (``train.steps``, see ``atlantis.train.config``): the "epochs" are validation
periods of a fixed total of optimiser steps (``StepBatchSampler``), so arms of any size take
the same steps under the same LR schedule and are validated at the same steps; everything
below holds per period.

Resume: after every epoch ``last.pt`` holds the complete state (see ``checkpoint``). A new
call finds it, refuses it if the config or the training data changed, restores model,
optimiser, scheduler, scaler and random generators, and continues with the next epoch.
Batches and augmentation are functions of ``(seed, epoch)``, the remaining randomness
(dropout, drop-path) comes from the restored generators, so on CPU a killed-and-resumed run
ends bit-for-bit where an uninterrupted one ends.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from atlantis.embed.base import progress_bar
from atlantis.errors import StagePaused
from atlantis.train import checkpoint as ckpt
from atlantis.train.config import TrainConfig
from atlantis.train.data import (
    EpochBatchSampler,
    FeatureDataset,
    ImageDataset,
    LabelledImages,
    StepBatchSampler,
    warn_singletons,
)
from atlantis.train.inference import embed_paths, evaluable, retrieval_row
from atlantis.train.losses import build_loss
from atlantis.train.metrics_log import MetricsLog
from atlantis.train.model import EmbeddingModel, build_model, freeze, image_transforms
from atlantis.train.runtime import Runtime
from atlantis.train.trunk import (
    FromTrunk,
    embed_trunk_outputs,
    split_backbone,
    trunk_key,
    trunk_outputs,
)

#: Called after each epoch's checkpoint is written, with the epoch and its metrics row.
Callback = Callable[[int, dict[str, Any]], None]


class TrainingPaused(StagePaused):
    """``max_epochs_this_call`` reached: the state is in ``last.pt``; run again to resume.

    A ``StagePaused``, so the stage's manifest says ``paused``, not ``failed``; ``epoch`` is
    the last finished epoch (what ``last.pt`` holds).
    """

    def __init__(self, message: str, epoch: int = 0) -> None:
        super().__init__(message)
        self.epoch = epoch


@dataclass
class FitResult:
    """What a ``fit`` call ended with (the full history, including resumed epochs)."""

    epochs: int
    best_epoch: int
    best_val_r1: float | None
    history: list[dict[str, Any]]
    resumed_from: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    optimizer_steps: int = 0  # taken in all, resumed epochs included (per process)
    images_seen: int = 0  # training images in those steps' batches, over all processes


def build(cfg: TrainConfig, num_classes: int) -> tuple[EmbeddingModel, torch.nn.Module, dict]:
    """The model (frozen as configured) and its loss; the dict counts parameters."""
    model = build_model(cfg.backbone, pretrained=cfg.pretrained, image_size=cfg.image_size,
                        embedding_dim=cfg.embedding_dim, head=cfg.head, curvature=cfg.curvature,
                        clip_r=cfg.clip_r, seed=cfg.seed, options=cfg.backbone_options,
                        head_init=cfg.head_init)  # fmt: skip
    counts = freeze(model, cfg.trainable_blocks, cfg.freeze_patch_embed)
    loss = build_loss(cfg.loss, cfg.loss_options, distance=model.distance,
                      curvature=cfg.curvature, tau=cfg.tau, num_classes=num_classes,
                      embedding_dim=cfg.embedding_dim, miner=cfg.miner,
                      miner_options=cfg.miner_options)  # fmt: skip
    return model, loss, counts


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _optimizer(cfg: TrainConfig, model: EmbeddingModel, loss: torch.nn.Module):
    head = [*model.linear.parameters(), *loss.parameters()]
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.head_lr or cfg.lr}]
    if body:
        groups.append({"params": body, "lr": cfg.lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay), [*head, *body]


def period_ends(cfg: TrainConfig, steps_per_epoch: int) -> list[int]:
    """The optimiser steps done at the end of each epoch 1..E (validation period).

    Epoch mode: whole passes of ``steps_per_epoch``. Steps mode: ``train.steps`` split as
    evenly as possible (``e * steps // epochs``), the same for arms of any size.
    """
    if cfg.steps is None:
        return [e * steps_per_epoch for e in range(1, cfg.epochs + 1)]
    return [e * cfg.steps // cfg.epochs for e in range(1, cfg.epochs + 1)]


def _schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """LR factor at each optimiser step: linear warmup, then constant or cosine to the end.

    Over ``train.steps`` when set (``warmup_epochs`` in periods of ``steps / epochs``), so
    it does not depend on the pool's size; else over ``epochs x steps_per_epoch``.
    """
    if cfg.steps is None:
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        total = max(1, cfg.epochs * steps_per_epoch)
    else:
        warmup, total = int(cfg.warmup_epochs * cfg.steps / cfg.epochs), cfg.steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "cosine":
            return 0.5 * (
                1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup)))
            )
        return 1.0

    return factor


def fit(cfg: TrainConfig, train: LabelledImages, val: LabelledImages | None, out_dir: Path, *,
        inputs: dict[str, str], runtime: Runtime | None = None, progress: bool = True,
        max_epochs_this_call: int | None = None, callbacks: Sequence[Callback] = (),
        trunk_cache: Path | None = None) -> FitResult:  # fmt: skip
    """Train (or resume) into ``out_dir``: ``last.pt``, ``best.pt``, ``metrics.csv``.

    ``trunk_cache``: a folder where ``cache_trunk`` keeps the frozen trunk's outputs by
    image content, shared by every training of a run (arms, seeds, resumes).
    """
    rt = runtime or Runtime(cfg.device, cfg.mixed_precision)
    out_dir = Path(out_dir)
    warn_singletons(train)
    _seed_everything(cfg.seed)
    model, loss_fn, counts = build(cfg, len(train.classes))
    model.to(rt.device)
    workers = cfg.loader_workers(rt.device.type)
    cached: dict[str, torch.Tensor] = {}
    if cfg.cache_trunk:
        assert cfg.trainable_blocks is not None
        trunk, rest = split_backbone(model, cfg.trainable_blocks)
        opts = {"batch_size": cfg.eval_batch_size, "num_workers": workers, "runtime": rt,
                "cache_dir": trunk_cache,
                "key": trunk_key(model, cfg.trainable_blocks, cfg.pretrained, cfg.seed)}  # fmt: skip
        cached["train"] = trunk_outputs(model, trunk, train, **opts)
        if evaluable(val):
            assert val is not None
            cached["val"] = trunk_outputs(model, trunk, val, **opts)
        net = rt.prepare(FromTrunk(model, rest))
        dataset: torch.utils.data.Dataset = FeatureDataset(cached["train"], train.labels)
    else:
        net = rt.prepare(model)
        dataset = ImageDataset(train.paths, train.labels, image_transforms(
            model.image_size, model.interpolation, train=cfg.augment))  # fmt: skip
    loss_fn.to(rt.device)
    optimizer, params = _optimizer(cfg, model, loss_fn)
    passes = EpochBatchSampler(train.labels, train.synthetic, m=cfg.m_per_class,
                               batch_size=cfg.batch_size, seed=cfg.seed,
                               synthetic_ratio=cfg.synthetic_ratio, rank=rt.rank,
                               world_size=rt.world_size)  # fmt: skip
    ends = period_ends(cfg, len(passes))
    sampler: EpochBatchSampler | StepBatchSampler = (
        passes if cfg.steps is None else StepBatchSampler(passes, ends)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, len(passes)))
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        pin_memory=rt.device.type == "cuda")  # fmt: skip
    config, config_hash = cfg.training_dict(), _hash(cfg)
    where = "epoch" if cfg.steps is None else "validation period"
    writer = MetricsLog(out_dir, rt.is_main, cfg.tensorboard)

    def state(epoch: int, best: dict, history: list | None = None) -> dict[str, Any]:
        """``best.pt`` (history None): the model and what it is; ``last.pt``: everything."""
        meta = {"model": model.state_dict(), "epoch": epoch, "best": best, "config": config,
                "config_hash": config_hash, "inputs": inputs, "model_info": model.info}  # fmt: skip
        if history is None:
            return meta
        return {**meta, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": rt.scaler.state_dict(), "loss": loss_fn.state_dict(),
                "history": history, "rng": ckpt.rng_state()}  # fmt: skip

    def validate(row: dict[str, Any]) -> float | None:
        if not evaluable(val):
            return None
        assert val is not None
        if "val" in cached:
            vectors = embed_trunk_outputs(rt.unwrap(net), cached["val"], cfg.eval_batch_size)
        else:
            vectors = embed_paths(model, val.paths, batch_size=cfg.eval_batch_size,
                                  num_workers=workers, runtime=rt)  # fmt: skip
        row.update(retrieval_row(model, vectors, val.labels, "val_"))
        return row["val_R@1"]

    resumed = ckpt.load_latest(out_dir, map_location=rt.device)
    if resumed is not None:
        ckpt.check_compatible(resumed, config, inputs, out_dir / ckpt.LAST)
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        rt.scaler.load_state_dict(resumed["scaler"])
        loss_fn.load_state_dict(resumed["loss"])
        start, best, history = resumed["epoch"], resumed["best"], resumed["history"]
        ckpt.set_rng_state(resumed["rng"])
    else:
        row: dict[str, Any] = {"epoch": 0}
        r1 = validate(row)
        row["best_val_R@1"] = r1
        start, best, history = 0, {"epoch": 0, "val_r1": r1}, [row]
        if rt.is_main:
            ckpt.save(out_dir / ckpt.BEST, state(0, best))
            ckpt.save(out_dir / ckpt.LAST, state(0, best, history), keep_previous=True)
    writer.rows(history, since=start + 1)

    for ran, epoch in enumerate(range(start + 1, cfg.epochs + 1)):
        if max_epochs_this_call is not None and ran >= max_epochs_this_call:
            done = "" if cfg.steps is None else f", step {ends[epoch - 2] if epoch > 1 else 0}"
            raise TrainingPaused(f"paused after {where} {epoch - 1}{done} (max_epochs_this_call"
                                 f"={max_epochs_this_call}); run again to resume",
                                 epoch=epoch - 1)  # fmt: skip
        sampler.set_epoch(epoch)
        row = {"epoch": epoch, **_run_epoch(net, loss_fn, loader, optimizer, scheduler, params,
                                            rt, cfg.grad_clip, progress, epoch,
                                            cfg.epochs)}  # fmt: skip
        if cfg.steps is not None:
            row["step"] = ends[epoch - 1]
        r1 = validate(row) if (epoch % cfg.eval_every == 0 or epoch == cfg.epochs) else None
        improved = r1 is not None and (best["val_r1"] is None or r1 > best["val_r1"])
        if improved or (best["val_r1"] is None and r1 is None):  # no val split: keep the latest
            best = {"epoch": epoch, "val_r1": r1}
            if rt.is_main:
                ckpt.save(out_dir / ckpt.BEST, state(epoch, best))
        row["best_val_R@1"] = best["val_r1"]
        history.append(row)
        if rt.is_main:
            ckpt.save(out_dir / ckpt.LAST, state(epoch, best, history), keep_previous=True)
            writer.rows(history, since=epoch)
        for callback in callbacks:
            callback(epoch, row)
    writer.close()
    trained = history[1:]  # epoch 0 takes no step
    return FitResult(cfg.epochs, best["epoch"], best["val_r1"], history,
                     resumed["epoch"] if resumed is not None else None, counts,
                     optimizer_steps=sum(int(r.get("steps", 0)) for r in trained),
                     images_seen=sum(int(r.get("images", r.get("steps", 0) * sampler.batch_size
                                                   * rt.world_size)) for r in trained),
                     )  # fmt: skip


def _run_epoch(net, loss_fn, loader, optimizer, scheduler, params, rt: Runtime,
               grad_clip: float | None, progress: bool, epoch: int,
               epochs: int) -> dict:  # fmt: skip
    """One pass over the epoch's batches; returns its mean loss, lr and throughput."""
    net.train()
    total, steps, images, norm = 0.0, 0, 0, 0.0
    t0 = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"epoch {epoch}/{epochs}", total=len(loader))
        for pixels, labels in loader:
            pixels, labels = pixels.to(rt.device), labels.to(rt.device)
            with rt.autocast():
                z = net(pixels)
            z_all, y_all = rt.gather(z.float(), labels)
            loss = loss_fn(z_all, y_all)
            norm = rt.step(loss, optimizer, params, grad_clip)
            scheduler.step()
            total, steps, images = total + float(loss.detach()), steps + 1, images + len(pixels)
            bar.update(
                task, advance=1, description=f"epoch {epoch}/{epochs} loss {total / steps:.4f}"
            )
    seconds = time.perf_counter() - t0
    return {"loss": total / max(1, steps), "lr": optimizer.param_groups[-1]["lr"],
            "grad_norm": norm, "steps": steps, "images": images * rt.world_size,
            "seconds": seconds,
            "images_per_s": images * rt.world_size / max(seconds, 1e-9)}  # fmt: skip


def _hash(cfg: TrainConfig) -> str:
    from atlantis.store.run import config_hash

    return config_hash(cfg.training_dict())

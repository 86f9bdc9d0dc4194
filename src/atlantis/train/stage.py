"""The train stage ``train/<arm>``: DML training, then the test report and the training feedback.

Arms: ``baseline`` trains on the real training images only; ``oracle`` (runs with a
``data.scenario`` only) on those plus exactly the real training images the scenario withheld
(``ingest/dropped.jsonl``): the upper bound any augmentation could reach; every other arm
(``naive``, ``targeted``, ...) adds the synthetic images its filter stage kept
(``atlantis.filtering.stage.load_kept(run, arm, delta)``), so arms differ only in that data.
After a filter delta sweep, each delta trains as ``train/<arm>/delta-<d>``, and
``feedback.select_best_arm`` picks the best of them on validation R@1 (supplement F).

Outputs (``RUN/train/<arm>/``):

* ``best.pt`` (the model of the best **validation** R@1), ``last.pt`` / ``last.prev.pt``
  (resume state), ``metrics.csv`` (one row per epoch; ``tensorboard/`` when installed);
* ``metrics.json``: best epoch and validation R@1, the **test** Recall@K of ``best.pt``, and
  ``optimizer_steps`` / ``images_seen`` (steps taken, images in their batches: what makes
  arms comparable, see ``train.steps``).
  The test split is embedded once, after training has finished and the model is chosen:
  it is reported, never used to select anything;
* ``embeddings/{train,test}.npy`` + ``*_ids.json``: ``best.pt``'s vectors of the real
  training and test images (the filter stage can use the training ones as the baseline
  DML embedding);
* ``feedback.json``: Algorithm 2 on per-class training R@1 (``feedback``).

A killed stage resumes from ``last.pt`` on the next call; ``force`` deletes the checkpoints
and trains from scratch. Under several processes only the main one writes (``runtime``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.data.ingest import load_ingested
from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError, InputError, StageError
from atlantis.evaluation.recall import default_ks, evaluate_retrieval
from atlantis.pipeline.config import ORACLE_NEEDS_SCENARIO, REAL_ARMS
from atlantis.store.atomic import atomic_save_npy, atomic_write_text
from atlantis.store.run import Run, StageManifest
from atlantis.train import checkpoint as ckpt
from atlantis.train.config import RUNTIME_KEYS, TrainConfig
from atlantis.train.data import LabelledImages, labelled_images
from atlantis.train.feedback import FEEDBACK_FILE, feedback_report, write_feedback
from atlantis.train.inference import embed_paths
from atlantis.train.loop import Callback, TrainingPaused, fit
from atlantis.train.model import check_pretrained
from atlantis.train.runtime import Runtime
from atlantis.train.subsets import Subset, select
from atlantis.train.trunk import embed_via_trunk

BASELINE = "baseline"
ORACLE = "oracle"


def stage_name(arm: str, delta: float | None = None, tag: str | None = None) -> str:
    """``train/<arm>``, ``train/<arm>/delta-<d>`` for one set of a filter delta sweep, and
    ``.../<tag>`` for another training of the same data (e.g. ``seed-1``: repeated seeds)."""
    name = f"train/{arm}"
    if delta is not None:
        from atlantis.filtering.config import delta_tag

        name += f"/{delta_tag(float(delta))}"
    return f"{name}/{tag}" if tag else name


def seed_tag(cfg: TrainConfig, seed: int) -> str | None:
    """The stage tag of a repeated training with ``seed``: none for the config's own seed
    (``train/<arm>``, what ``atlantis train`` makes), ``seed-<s>`` for the others."""
    return None if seed == cfg.seed else f"seed-{seed}"


def split_records(run: Run, arm: str, delta: float | None = None,
                  subset: Subset | None = None,
                  ) -> tuple[dict[str, list[ImageRecord]], dict[str, str]]:  # fmt: skip
    """Records per split and the stage inputs: train = the real training records, plus the
    arm's kept synthetic images (augmented arms; ``subset`` picks a nested part of them, a
    budget-curve point) or the scenario's withheld real ones (``oracle``, a ``ConfigError``
    without a scenario: it would silently be the baseline)."""
    subset = subset or Subset()
    records, _ = load_ingested(run)
    splits = {s: [r for r in records if r.split == s] for s in ("train", "val", "test")}
    inputs = {"ingest": run.output_hash("ingest")}
    if arm in REAL_ARMS and (delta is not None or not subset.is_all):
        what = "delta" if delta is not None else "synthetic-image budget"
        raise ConfigError(f"the {arm} arm trains on real images only: it has no {what}")
    if arm == BASELINE:
        return splits, inputs
    if arm == ORACLE:  # ingest's output hash covers dropped.jsonl: no other input
        from atlantis.data.ingest import load_dropped

        dropped = load_dropped(run)
        if dropped is None:
            raise ConfigError(f"{run.root}: {ORACLE_NEEDS_SCENARIO}")
        splits["train"] = splits["train"] + [r for r in dropped if r.split == "train"]
        return splits, inputs
    from atlantis.filtering.stage import load_kept, load_removed

    kept = load_kept(run, arm, delta)
    if not subset.is_all:
        kept = select(kept, load_removed(run, arm, delta), subset)
        inputs["subset"] = subset.key()
    splits["train"] = splits["train"] + kept
    inputs["filter"] = run.output_hash(f"filter/{arm}")
    return splits, inputs


def train(run: Run, cfg: TrainConfig, arm: str = BASELINE, *, delta: float | None = None,
          tag: str | None = None, subset: Subset | None = None, force: bool = False, progress: bool = True, max_epochs_this_call: int | None = None,
          callbacks: Sequence[Callback] = (), runtime: Runtime | None = None,
          ) -> StageManifest | None:  # fmt: skip
    """Run (or resume, or skip when up to date) the ``train/<arm>`` stage.

    ``delta`` picks one kept set of a filter delta sweep (stage ``train/<arm>/delta-<d>``);
    ``tag`` names another training of the same data (``seed_tag``: ``train/<arm>/seed-1``);
    ``subset`` trains on a nested part of the arm's synthetic images (a budget-curve point:
    give it its own ``tag``, e.g. ``budget-100``).
    Returns the stage manifest (None on processes other than the main one, which write
    nothing). ``max_epochs_this_call`` stops with ``TrainingPaused`` after that many epochs;
    ``callbacks`` are called after each epoch's checkpoint.
    """
    name = stage_name(arm, delta, tag)
    if max_epochs_this_call is not None and max_epochs_this_call < 0:
        raise InputError(f"{max_epochs_this_call}: give 0 or more epochs (0: only the "
                         "untrained epoch 0)", "--epochs-this-call")  # fmt: skip
    check_pretrained(cfg.backbone, cfg.pretrained)  # a bad weights file fails before any work
    splits, inputs = split_records(run, arm, delta, subset)
    rt = runtime or Runtime(cfg.device, cfg.mixed_precision)
    data = {s: labelled_images(run, recs) for s, recs in splits.items() if recs}
    if "train" not in data:
        raise StageError(f"run {run.root}: no training images; re-ingest with a train split")
    kwargs: dict[str, Any] = dict(inputs=inputs, runtime=rt, progress=progress and rt.is_main,
                                  max_epochs_this_call=max_epochs_this_call,
                                  callbacks=callbacks, trunk_cache=trunk_cache_dir(run))  # fmt: skip
    if force and rt.is_main:  # before any process can read the old checkpoints
        _clear_checkpoints(run.stage_dir(name))
    if rt.world_size > 1:  # every process must agree before the main one writes anything
        skip = _up_to_date(run, name, cfg, inputs) and not force
        rt.wait()
        if skip:
            return run.read_manifest(name) if rt.is_main else None
    if not rt.is_main:  # compute alongside the main process; it writes everything
        fit(cfg, data["train"], data.get("val"), run.stage_dir(name), **kwargs)
        rt.wait()
        return None
    with run.stage(name, cfg, inputs, exclude=set(RUNTIME_KEYS) | cfg.unset_keys(),
                   force=force) as ctx:  # fmt: skip
        if ctx.up_to_date:
            return ctx.previous
        with ctx.timer("train_s"):
            try:
                result = fit(cfg, data["train"], data.get("val"), ctx.dir, **kwargs)
            except TrainingPaused as paused:  # the manifest says how far it got: status shows it
                ctx.counts.update(epochs_done=paused.epoch, epochs=cfg.epochs)
                raise
        model = ckpt.load_model(ctx.dir / ckpt.BEST, rt.device)
        steps = {"optimizer_steps": result.optimizer_steps, "images_seen": result.images_seen}
        report = _report(ctx, cfg, model, data, splits, rt, progress, steps)
        ctx.counts.update(train_images=len(data["train"]), classes=len(data["train"].classes),
                          **steps,
                          synthetic_images=int(data["train"].synthetic.sum()),
                          epochs=result.epochs, best_epoch=result.best_epoch,
                          **{f"{k}_parameters": v for k, v in result.counts.items()})  # fmt: skip
        ctx.info.update(best_val_r1=result.best_val_r1, test=report.get("test_recall"),
                        resumed_from=result.resumed_from, distance=model.distance)  # fmt: skip
        for f in (ckpt.BEST, "metrics.csv", "metrics.json", FEEDBACK_FILE):
            ctx.add_output(ctx.dir / f)
    rt.wait()
    return run.require(name)


def trunk_cache_dir(run: Run) -> Path:
    """Where ``cache_trunk`` keeps frozen-trunk outputs: one store per run, shared by arms."""
    return run.root / "cache" / "trunk"


def _clear_checkpoints(folder: Path) -> None:
    for f in (ckpt.LAST, ckpt.PREVIOUS, ckpt.BEST):
        (folder / f).unlink(missing_ok=True)
    shutil.rmtree(folder / "tensorboard", ignore_errors=True)


def _up_to_date(run: Run, name: str, cfg: TrainConfig, inputs: dict[str, str]) -> bool:
    from atlantis.store.run import config_hash

    prev = run.read_manifest(name)
    return (prev is not None and prev.status == "done" and prev.input_hashes == inputs
            and prev.config_hash == config_hash(cfg, set(RUNTIME_KEYS) | cfg.unset_keys()))  # fmt: skip


def _report(ctx: Any, cfg: TrainConfig, model: Any, data: dict[str, LabelledImages],
            splits: dict[str, list[ImageRecord]], rt: Runtime, progress: bool,
            steps: dict[str, int]) -> dict:  # fmt: skip
    """After training: embed real train and test with ``best.pt``; test R@K and the feedback.

    ``steps``: ``optimizer_steps`` and ``images_seen``, recorded so a comparison can show
    that its arms were optimised alike.
    """
    best = ckpt.load(ctx.dir / ckpt.BEST)
    metrics: dict[str, Any] = {"arm": ctx.name.removeprefix("train/"), "best_epoch": best["epoch"],
                               "best_val_R@1": best["best"]["val_r1"],
                               "distance": model.distance,
                               "curvature": model.curvature, **steps,
                               "steps_mode": cfg.steps is not None}  # fmt: skip
    real_train = [r for r in splits["train"] if r.source == "real"]
    embed = {"train": labelled_images(ctx.run, real_train, data["train"].classes)}
    if "test" in data:
        embed["test"] = data["test"]
    vectors = {}
    workers = cfg.loader_workers(rt.device.type)
    for split, images in embed.items():  # the test split is read here, after selection
        with ctx.timer(f"embed_{split}_s"):
            if cfg.cache_trunk and cfg.trainable_blocks is not None:
                vectors[split] = embed_via_trunk(
                    model, images, cfg.trainable_blocks, cfg.pretrained, cfg.seed,
                    cache_dir=trunk_cache_dir(ctx.run), batch_size=cfg.eval_batch_size,
                    num_workers=workers, runtime=rt)  # fmt: skip
            else:
                vectors[split] = embed_paths(model, images.paths, batch_size=cfg.eval_batch_size,
                                             num_workers=workers, runtime=rt,
                                             progress=progress, desc=f"embedding {split}")  # fmt: skip
        _save_embeddings(ctx, split, vectors[split], images.ids)
    test = embed.get("test")
    if test is not None and len(test) >= 2 and len(np.unique(test.labels)) >= 2:
        names = np.array(test.classes)[test.labels]
        ks = default_ks(len(names), len(set(names.tolist())))
        m = evaluate_retrieval(vectors["test"], names, ks=[k for k in ks if k < len(names)],
                               distance=model.distance,
                               curvature=model.curvature or 0.1)  # fmt: skip
        metrics["test"] = m.to_dict()
        metrics["test_recall"] = {f"R@{k}": v for k, v in m.recall.items()}
    train_names = np.array(embed["train"].classes)[embed["train"].labels]
    per_class: dict[str, float] = {}
    if len(set(train_names.tolist())) >= 2:
        m = evaluate_retrieval(vectors["train"], train_names, ks=[1], distance=model.distance,
                               curvature=model.curvature or 0.1)  # fmt: skip
        per_class = {str(c): v for c, v in m.per_class_r1.items()}
        metrics["train_R@1"] = m.recall[1]
    write_feedback(ctx.dir / FEEDBACK_FILE, feedback_report(
        per_class, cfg.feedback_k, cfg.feedback_tau, model=f"{ctx.name}/{ckpt.BEST}",
        best_epoch=best["epoch"], split="train (real images)",
        images=len(train_names)))  # fmt: skip
    atomic_write_text(ctx.dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _save_embeddings(ctx: Any, split: str, vectors: np.ndarray, ids: list[str]) -> None:
    folder: Path = ctx.dir / "embeddings"
    atomic_save_npy(folder / f"{split}.npy", vectors.astype(np.float32, copy=False))
    atomic_write_text(folder / f"{split}_ids.json", json.dumps(ids) + "\n")
    ctx.add_output(folder / f"{split}.npy")
    ctx.add_output(folder / f"{split}_ids.json")


def load_metrics(run: Run, arm: str = BASELINE, delta: float | None = None,
                 tag: str | None = None) -> dict[str, Any]:  # fmt: skip
    """``metrics.json`` of a finished train stage (test R@K, best epoch, val R@1)."""
    name = stage_name(arm, delta, tag)
    run.require(name)
    return json.loads((run.stage_dir(name) / "metrics.json").read_text(encoding="utf-8"))

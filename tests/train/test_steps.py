"""``train.steps``: a fixed number of optimiser steps, whatever the size of the training pool.

Arms of a comparison differ in their images; these tests check that with the same
``train.steps`` they take the same steps, at the same learning rate, validated at the same
points, that a steps-mode run resumes exactly, and that the loop derives the step count
from the baseline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from atlantis.config import AtlantisConfig
from atlantis.data.ingest import load_ingested
from atlantis.data.records import ImageRecord, write_records
from atlantis.pipeline.loop import comparison_steps
from atlantis.store.run import Run
from atlantis.train import checkpoint as ckpt
from atlantis.train.config import TrainConfig
from atlantis.train.data import EpochBatchSampler, StepBatchSampler, labelled_images
from atlantis.train.loop import _schedule, period_ends
from atlantis.train.runtime import Runtime
from atlantis.train.stage import train

from .conftest import tiny_config


class Killed(RuntimeError):
    """Stands in for a kill: raised from a callback after a period's checkpoint."""


def _labels(n_classes: int, per_class: int) -> np.ndarray:
    return np.repeat(np.arange(n_classes), per_class)


def test_steps_split_evenly_into_validation_periods() -> None:
    cfg = TrainConfig(steps=10, epochs=3, batch_size=12, m_per_class=3)
    assert period_ends(cfg, steps_per_epoch=999) == [3, 6, 10]  # the pool does not matter
    whole = TrainConfig(steps=12, epochs=3, batch_size=12, m_per_class=3)
    epochs = TrainConfig(epochs=3, batch_size=12, m_per_class=3)
    assert period_ends(whole, 4) == period_ends(epochs, 4) == [4, 8, 12]
    # the schedule is over the steps: the same for any pool when steps is set, and equal
    # to the epoch mode's when the steps are whole passes
    kw = {"scheduler": "cosine", "warmup_epochs": 1.0}
    a = _schedule(whole.model_copy(update=kw), 4)
    b = _schedule(whole.model_copy(update=kw), 7)
    c = _schedule(epochs.model_copy(update=kw), 4)
    assert [a(s) for s in range(12)] == [b(s) for s in range(12)] == [c(s) for s in range(12)]


def test_step_batches_are_the_epoch_batches_in_one_stream() -> None:
    passes = EpochBatchSampler(_labels(6, 6), m=3, batch_size=12, seed=5)
    per_pass = len(passes)
    stream = [b for e in range(1, 5) for b in passes._batches(e)]
    ends = [2, 5, 3 * per_pass + 1]  # periods that start and end inside passes
    sampler = StepBatchSampler(passes, ends)
    got = []
    for period in (1, 2, 3):
        sampler.set_epoch(period)
        assert len(sampler) == ends[period - 1] - ([0, *ends][period - 1])
        got += list(sampler)
    assert got == stream[: ends[-1]]
    # whole passes: exactly the epoch mode's batches, epoch by epoch
    whole = StepBatchSampler(passes, [per_pass, 2 * per_pass])
    whole.set_epoch(2)
    assert list(whole) == passes._batches(2)


def test_steps_below_one_or_below_the_periods_are_clear_errors() -> None:
    with pytest.raises(ValidationError, match=r"train\.steps \(0\) must be 1 or more"):
        TrainConfig(steps=0)
    with pytest.raises(ValidationError, match=r"train\.steps \(5\).*train\.epochs \(10\)"):
        TrainConfig(steps=5, epochs=10)
    assert TrainConfig(steps=10, epochs=10).steps == 10


def _add_kept(run: Run, arm: str, n: int) -> None:
    """``n`` synthetic copies of real training images, as the arm's filter kept them."""
    records, _ = load_ingested(run)
    train_recs = [r for r in records if r.split == "train"]
    images = run.root / "generate" / arm / "images"
    images.mkdir(parents=True)
    kept = []
    for i in range(n):
        r = train_recs[i % len(train_recs)]
        path = images / f"s{i}.png"
        shutil.copy(labelled_images(run, [r]).paths[0], path)
        kept.append(ImageRecord(id=f"syn{i}", path=path.relative_to(run.root).as_posix(),
                                label=r.label, split="train", source="synthetic",
                                meta={"arm": arm}))  # fmt: skip
    with run.stage(f"filter/{arm}", {"delta": 1.0}) as ctx:
        write_records(ctx.dir / "kept.jsonl", kept)
        ctx.add_output(ctx.dir / "kept.jsonl")


def test_equal_steps_for_arms_of_different_sizes(run: Run, monkeypatch) -> None:
    _add_kept(run, "targeted", 12)  # 36 real + 12 synthetic: 4 steps a pass instead of 3
    lrs: list[list[float]] = []
    step = Runtime.step

    def recording(self, loss, optimizer, params, grad_clip):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        return step(self, loss, optimizer, params, grad_clip)

    monkeypatch.setattr(Runtime, "step", recording)
    cfg = tiny_config(steps=7, epochs=2, scheduler="cosine", warmup_epochs=0.5)
    seen: dict[str, dict] = {}
    for arm in ("baseline", "targeted"):
        lrs.clear()
        manifest = train(run, cfg, arm, progress=False)
        folder = run.stage_dir(f"train/{arm}")
        history = ckpt.load(folder / ckpt.LAST)["history"]
        seen[arm] = {"lrs": list(lrs), "steps": [r.get("step") for r in history],
                     "metrics": json.loads((folder / "metrics.json").read_text()),
                     "counts": manifest.counts}  # fmt: skip
    base, targ = seen["baseline"], seen["targeted"]
    assert base["counts"]["train_images"] < targ["counts"]["train_images"]
    assert len(base["lrs"]) == len(targ["lrs"]) == 7
    assert base["lrs"] == targ["lrs"]  # the same LR at every step
    assert len({lr[0] for lr in base["lrs"]}) > 3  # the schedule does change it
    assert base["steps"] == targ["steps"] == [None, 3, 7]  # validated at the same steps
    for arm in (base, targ):
        assert arm["metrics"]["optimizer_steps"] == arm["counts"]["optimizer_steps"] == 7
        assert arm["metrics"]["images_seen"] == 7 * 12 and arm["metrics"]["steps_mode"]


def test_epoch_mode_records_its_steps_and_keeps_its_hash(run: Run) -> None:
    """Without ``steps`` nothing changes: not the stage's hash, not the checkpoint's config."""
    from atlantis.store.run import config_hash
    from atlantis.train.config import RUNTIME_KEYS

    cfg = tiny_config(epochs=1)
    manifest = train(run, cfg, progress=False)
    metrics = json.loads((run.stage_dir("train/baseline") / "metrics.json").read_text())
    assert metrics["optimizer_steps"] == 3 and metrics["images_seen"] == 36
    assert not metrics["steps_mode"]
    assert "steps" not in ckpt.load(run.stage_dir("train/baseline") / ckpt.LAST)["config"]
    data = cfg.model_dump(mode="json")
    data.pop("steps")
    assert manifest.config_hash == config_hash(data, set(RUNTIME_KEYS))


STEPS_CFG = tiny_config(steps=7, epochs=3, backbone_options={"drop_path_rate": 0.2})


def _state(run: Run) -> tuple[dict, list[dict], dict]:
    folder = run.stage_dir("train/baseline")
    last = ckpt.load(folder / ckpt.LAST)
    keys = ("epoch", "step", "loss", "lr", "grad_norm", "steps", "val_R@1", "best_val_R@1")
    history = [{k: row.get(k) for k in keys} for row in last["history"]]
    return last["model"], history, json.loads((folder / "metrics.json").read_text())


def test_steps_run_killed_or_paused_mid_pass_resumes_exactly(ingested: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """Periods end at steps 2, 4, 7 of passes of 3 steps: resume restarts inside a pass."""

    def copy(name: str) -> Run:
        shutil.copytree(ingested, tmp_path / name)
        return Run(tmp_path / name)

    reference = copy("reference")
    train(reference, STEPS_CFG, progress=False)
    ref_state, ref_history, ref_metrics = _state(reference)
    assert [r["step"] for r in ref_history] == [None, 2, 4, 7]
    assert [r["steps"] for r in ref_history[1:]] == [2, 2, 3]

    def kill(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Killed("after period 1")

    killed = copy("killed")
    with pytest.raises(Killed):
        train(killed, STEPS_CFG, progress=False, callbacks=[kill])
    paused = copy("paused")
    from atlantis.train.loop import TrainingPaused

    with pytest.raises(TrainingPaused, match="validation period 2, step 4"):
        train(paused, STEPS_CFG, progress=False, max_epochs_this_call=2)
    for resumed, after in ((killed, 1), (paused, 2)):
        manifest = train(resumed, STEPS_CFG, progress=False)
        assert manifest.info["resumed_from"] == after
        state, history, metrics = _state(resumed)
        assert history == ref_history and metrics == ref_metrics
        assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)


def test_the_loop_gives_every_arm_the_baselines_step_count(run: Run) -> None:
    records, _ = load_ingested(run)
    n_train = sum(r.split == "train" for r in records)
    tiny = tiny_config(epochs=4).model_dump()
    cfg = AtlantisConfig(train=tiny, loop={"arms": ["baseline", "targeted"]})
    assert comparison_steps(run, cfg) == 4 * (n_train // 12)  # 36 images, batches of 12
    alone = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"arms": ["baseline"]})})
    assert comparison_steps(run, alone) is None  # one arm: the epoch mode, as before
    fixed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 9})})
    assert comparison_steps(run, fixed) == 9


def test_train_arm_gives_every_arm_and_seed_the_same_steps(run: Run, monkeypatch) -> None:
    """What ``run_loop`` trains: each arm and seed gets ``comparison_steps``, seeds shared."""
    from types import SimpleNamespace

    from atlantis.pipeline.loop import train_arm
    from atlantis.train import stage as stage_module

    calls: list[tuple[str, int, int | None]] = []

    def fake_train(run_, cfg_, arm, **kw):
        calls.append((arm, cfg_.seed, cfg_.steps))
        return SimpleNamespace(status="done", info={})

    monkeypatch.setattr(stage_module, "train", fake_train)
    cfg = AtlantisConfig(train=tiny_config(epochs=2).model_dump(),
                         loop={"arms": ["baseline", "naive", "targeted"], "seeds": 2})  # fmt: skip
    for arm in cfg.loop.arms:
        train_arm(run, cfg, arm, progress=False, say=lambda s: None)
    assert calls == [(arm, seed, 6) for arm in cfg.loop.arms for seed in (0, 1)]  # 2 x 36 // 12

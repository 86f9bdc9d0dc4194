"""The train stage end to end on tiny real images: learning, resume, selection, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from atlantis.data.ingest import load_ingested
from atlantis.data.records import ImageRecord, write_records
from atlantis.evaluation.recall import evaluate_retrieval
from atlantis.store.run import Run
from atlantis.train import checkpoint as ckpt
from atlantis.train import loop as loop_module
from atlantis.train import stage as stage_module
from atlantis.train.checkpoint import CheckpointError
from atlantis.train.data import labelled_images
from atlantis.train.inference import embed_paths
from atlantis.train.loop import TrainingPaused, build
from atlantis.train.runtime import Runtime
from atlantis.train.stage import train

from .conftest import tiny_config

# drop-path draws from the global torch generator: resume must restore it exactly
CFG = tiny_config(epochs=3, backbone_options={"drop_path_rate": 0.2})
COMPARED = ("epoch", "loss", "lr", "grad_norm", "val_R@1", "val_MAP@R", "best_val_R@1")


class Killed(RuntimeError):
    """Stands in for a kill: raised from a callback after an epoch's checkpoint."""


def _kill_after(epoch: int):
    def callback(e: int, row: dict) -> None:
        if e == epoch:
            raise Killed(f"killed after epoch {e}")

    return callback


def _copy(ingested: Path, target: Path) -> Run:
    shutil.copytree(ingested, target)
    return Run(target)


def _outcome(run: Run, arm: str = "baseline") -> tuple[dict, list[dict], dict]:
    folder = run.stage_dir(f"train/{arm}")
    last = ckpt.load(folder / ckpt.LAST)
    history = [{k: row.get(k) for k in COMPARED} for row in last["history"]]
    return last["model"], history, json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(ingested: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted 3-epoch run: what every resumed run must end with, exactly."""
    run = _copy(ingested, tmp_path_factory.mktemp("reference") / "run")
    train(run, CFG, progress=False)
    return _outcome(run)


def _assert_same(outcome: tuple, reference: tuple) -> None:
    state, history, metrics = outcome
    ref_state, ref_history, ref_metrics = reference
    assert history == ref_history
    assert state.keys() == ref_state.keys()
    assert all(torch.equal(state[k], ref_state[k]) for k in state)
    assert metrics == ref_metrics


def test_training_lowers_the_loss_and_raises_train_recall(run: Run) -> None:
    cfg = tiny_config(epochs=8)
    records, _ = load_ingested(run)
    train_set = labelled_images(run, [r for r in records if r.split == "train"])
    initial, _, _ = build(cfg, len(train_set.classes))

    def train_r1(model) -> float:
        vectors = embed_paths(model, train_set.paths)
        return evaluate_retrieval(vectors, train_set.labels, ks=[1], distance=model.distance,
                                  curvature=0.1).recall[1]  # fmt: skip

    manifest = train(run, cfg, progress=False)
    last = ckpt.load(run.stage_dir("train/baseline") / ckpt.LAST)
    losses = [row["loss"] for row in last["history"][1:]]
    assert losses[-1] < 0.5 * losses[0]
    trained = ckpt.load_model(run.stage_dir("train/baseline") / ckpt.LAST)
    assert train_r1(trained) > train_r1(initial) + 0.2
    assert manifest.status == "done" and manifest.counts["epochs"] == 8
    folder = run.stage_dir("train/baseline")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["test_recall"]) == {"R@1", "R@2", "R@4", "R@8"}
    assert metrics["best_epoch"] == manifest.counts["best_epoch"]
    csv_lines = (folder / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,loss,lr") and len(csv_lines) == 1 + 9  # epochs 0..8
    feedback = json.loads((folder / "feedback.json").read_text())
    assert set(feedback["c_poor"]) <= set(feedback["per_class_r1"]) and feedback["k"] == 5
    assert len(feedback["per_class_r1"]) == len(train_set.classes)
    vectors = np.load(folder / "embeddings" / "test.npy")
    assert vectors.shape == (len(json.loads((folder / "embeddings/test_ids.json").read_text())), 16)


def test_killed_run_resumes_to_the_same_weights_and_metrics(run: Run, reference) -> None:
    with pytest.raises(Killed):
        train(run, CFG, progress=False, callbacks=[_kill_after(1)])
    assert run.read_manifest("train/baseline").status == "failed"
    manifest = train(run, CFG.model_copy(update={"num_workers": 0, "eval_batch_size": 7}),
                     progress=False)  # fmt: skip
    assert manifest.info["resumed_from"] == 1
    _assert_same(_outcome(run), reference)
    # up to date now: a third call trains nothing
    mtime = (run.stage_dir("train/baseline") / ckpt.LAST).stat().st_mtime_ns
    assert train(run, CFG, progress=False).status == "done"
    assert (run.stage_dir("train/baseline") / ckpt.LAST).stat().st_mtime_ns == mtime


def test_pause_then_corrupt_last_checkpoint_falls_back_to_the_previous(run: Run, reference) -> None:
    with pytest.raises(TrainingPaused, match="after epoch 2"):
        train(run, CFG, progress=False, max_epochs_this_call=2)
    folder = run.stage_dir("train/baseline")
    assert ckpt.load(folder / ckpt.PREVIOUS)["epoch"] == 1
    (folder / ckpt.LAST).write_bytes((folder / ckpt.LAST).read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ckpt.load(folder / ckpt.LAST)
    with pytest.warns(RuntimeWarning, match=r"last\.pt: corrupt .*resuming from .*last\.prev\.pt"):
        manifest = train(run, CFG, progress=False)
    assert manifest.info["resumed_from"] == 1
    _assert_same(_outcome(run), reference)


def test_both_checkpoints_unreadable_is_a_clear_error(run: Run) -> None:
    with pytest.raises(TrainingPaused):
        train(run, CFG, progress=False, max_epochs_this_call=2)
    folder = run.stage_dir("train/baseline")
    for name in (ckpt.LAST, ckpt.PREVIOUS):
        (folder / name).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint.*--force"):
        train(run, CFG, progress=False)
    assert train(run, CFG, progress=False, force=True).status == "done"


def test_checkpoint_from_another_config_is_refused(run: Run) -> None:
    with pytest.raises(TrainingPaused):
        train(run, CFG, progress=False, max_epochs_this_call=1)
    other = CFG.model_copy(update={"lr": 2e-3, "tau": 0.1})
    with pytest.raises(CheckpointError, match=r"lr: 0\.001 -> 0\.002; tau: 0\.2 -> 0\.1.*--force"):
        train(run, other, progress=False)
    assert train(run, other, progress=False, force=True).info["resumed_from"] is None


def test_model_selection_never_reads_the_test_split(run: Run, monkeypatch) -> None:
    records, _ = load_ingested(run)
    test_paths = set(labelled_images(run, [r for r in records if r.split == "test"]).paths)
    events: list[str] = []
    real_embed, real_fit = loop_module.embed_paths, stage_module.fit

    def spy_embed(model, paths, **kwargs):
        events.append("test" if set(paths) & test_paths else "other")
        assert not set(paths) & test_paths or set(paths) == test_paths  # never mixed in
        return real_embed(model, paths, **kwargs)

    def spy_fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        events.append("fit done")
        return result

    monkeypatch.setattr(loop_module, "embed_paths", spy_embed)
    monkeypatch.setattr(stage_module, "embed_paths", spy_embed)
    monkeypatch.setattr(stage_module, "fit", spy_fit)
    train(run, CFG, progress=False)
    assert events.count("test") == 1 and events.index("test") > events.index("fit done")
    assert events.count("other") >= CFG.epochs + 1  # validation every epoch, before that


def test_cached_trunk_trains_like_the_full_model(ingested: Path, tmp_path: Path) -> None:
    base = tiny_config(epochs=2, augment=False, trainable_blocks=1, head="sphere")
    outcomes = []
    for cache in (False, True):
        run = _copy(ingested, tmp_path / f"run-{cache}")
        train(run, base.model_copy(update={"cache_trunk": cache}), progress=False)
        outcomes.append(_outcome(run))
    (s0, h0, m0), (s1, h1, m1) = outcomes
    for a, b in zip(h0, h1, strict=True):
        assert a["epoch"] == b["epoch"]
        for key in ("loss", "val_R@1"):
            assert (a[key] is None and b[key] is None) or a[key] == pytest.approx(b[key], abs=1e-4)
    for key in s0:
        torch.testing.assert_close(s0[key], s1[key], atol=1e-4, rtol=1e-4)
    assert m0["test_recall"] == pytest.approx(m1["test_recall"], abs=0.03)


def test_trunk_outputs_are_computed_once_per_run(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second training of the run (another recipe, arm or seed) reuses every trunk output."""
    from atlantis.train import trunk as trunk_module

    calls: list[int] = []
    real = trunk_module.embed_paths

    def counting(model, paths, **kwargs):
        calls.append(len(paths))
        return real(model, paths, **kwargs)

    monkeypatch.setattr(trunk_module, "embed_paths", counting)
    cfg = tiny_config(epochs=1, augment=False, trainable_blocks=1, head="sphere",
                      cache_trunk=True)  # fmt: skip
    train(run, cfg, progress=False)
    first = sum(calls)
    records, _ = load_ingested(run)
    assert first == len(records)  # train, val and test, each image once
    calls.clear()
    train(run, cfg.model_copy(update={"lr": cfg.lr * 2}), force=True, progress=False)
    assert calls == []
    # and the cached path embeds like the model itself
    model = ckpt.load_model(run.stage_dir("train/baseline") / ckpt.BEST)
    test = labelled_images(run, [r for r in records if r.split == "test"])
    direct = embed_paths(model, test.paths)
    stored = np.load(run.stage_dir("train/baseline") / "embeddings" / "test.npy")
    np.testing.assert_allclose(stored, direct, atol=1e-5)


def test_augmented_arm_trains_on_the_kept_synthetic_images(run: Run) -> None:
    records, _ = load_ingested(run)
    train_recs = [r for r in records if r.split == "train"]
    images = run.root / "generate" / "targeted" / "images"
    images.mkdir(parents=True)
    kept = []
    for i, r in enumerate(train_recs[:6]):
        path = images / f"s{i}.png"
        shutil.copy(labelled_images(run, [r]).paths[0], path)
        kept.append(ImageRecord(id=f"syn{i}", path=path.relative_to(run.root).as_posix(),
                                label=r.label if i < 4 else "new-class", split="train",
                                source="synthetic", meta={"arm": "targeted"}))  # fmt: skip
    with run.stage("filter/targeted", {"delta": 1.0}) as ctx:
        write_records(ctx.dir / "kept.jsonl", kept)
        ctx.add_output(ctx.dir / "kept.jsonl")
    manifest = train(
        run,
        CFG.model_copy(update={"epochs": 1}),
        "targeted",
        progress=False,
        runtime=Runtime("cpu", "no", use_accelerate=False),
    )  # plain torch path
    assert manifest.counts["synthetic_images"] == 6
    assert manifest.counts["classes"] == len({r.label for r in train_recs}) + 1  # a new class
    assert set(manifest.input_hashes) == {"ingest", "filter"}
    feedback = json.loads((run.stage_dir("train/targeted") / "feedback.json").read_text())
    assert "new-class" not in feedback["per_class_r1"]  # graded on real images only

"""Which train stage an export reads: ``train/<arm>`` or one of its repeated seeds.

``atlantis train`` writes ``RUN/train/<arm>/`` with the config's seed; the loop's repeated
seeds go to ``RUN/train/<arm>/seed-<s>/`` (``train.stage.seed_tag``). ``--seed S`` means
the training with seed ``S``, wherever it lives: ``train/<arm>`` when that stage was
trained with ``S``, else ``train/<arm>/seed-S``. A missing stage is answered with the
command that makes it, with the real run path, so it can be pasted as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlantis.errors import InputError, StageError
from atlantis.store.run import Run, StageManifest
from atlantis.train.checkpoint import BEST
from atlantis.train.stage import stage_name


@dataclass(frozen=True)
class TrainedArm:
    """A finished train stage: its checkpoint, the seed it was trained with, its metrics."""

    run: Run
    arm: str
    stage: str
    seed: int | None
    checkpoint: Path
    metrics: dict[str, Any] | None  # metrics.json (test Recall@K, best epoch), when present


def find_trained(run_dir: Path | str, arm: str, seed: int | None = None) -> TrainedArm:
    """The finished train stage of ``arm`` (with ``seed``), or an error naming the command."""
    run = Run(run_dir)
    if not run.root.is_dir():
        raise InputError("no such run folder", run.root)
    main = stage_name(arm)
    main_manifest = run.read_manifest(main)
    name = main
    if seed is not None and not _trained_with(main_manifest, seed) and main_manifest is not None:
        name = stage_name(arm, tag=f"seed-{seed}")
    manifest = main_manifest if name == main else run.read_manifest(name)
    if manifest is None or manifest.status != "done":
        raise StageError(_not_trained(run, arm, name, seed, manifest, main_manifest))
    checkpoint = run.stage_dir(name) / BEST
    if not checkpoint.is_file():
        raise StageError(f"run {run.root}: stage '{name}' is done but {checkpoint} is missing; "
                         f"train it again with: atlantis train {run.root} --arm {arm} --force")  # fmt: skip
    metrics_path = run.stage_dir(name) / "metrics.json"
    metrics = (
        json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None
    )
    trained_seed = manifest.config.get("seed")
    return TrainedArm(run, arm, name, trained_seed if isinstance(trained_seed, int) else seed,
                      checkpoint, metrics)  # fmt: skip


def _trained_with(manifest: StageManifest | None, seed: int) -> bool:
    return manifest is not None and manifest.config.get("seed", 0) == seed


def _not_trained(run: Run, arm: str, name: str, seed: int | None, manifest: StageManifest | None,
                 main: StageManifest | None) -> str:  # fmt: skip
    """Why ``name`` cannot be exported, and the exact command that trains it."""
    state = "has not run" if manifest is None else f"is '{manifest.status}'"
    what = f"run {run.root}: arm '{arm}'" + (f" (seed {seed})" if seed is not None else "")
    head = f"{what} has not been trained: stage '{name}' {state}."
    train = f"atlantis train {run.root} --arm {arm}"
    if name == stage_name(arm):
        if manifest is not None and manifest.status == "paused":
            return f"{head} Resume it with: {train}"
        return f"{head} Train it with: {train}" + (
            f" --set train.seed={seed}" if seed is not None else "")  # fmt: skip
    first = main.config.get("seed", 0) if main is not None else 0
    return (f"{head} train/{arm} holds seed {first}; the other seeds are trained by the loop: "
            f"atlantis run CONFIG --out {run.root} with loop.seeds >= {seed - first + 1} "
            f"(seeds {first}, {first + 1}, ...)" if seed is not None and seed > first else
            f"{head} train/{arm} holds seed {first}; retrain it with seed {seed}: "
            f"{train} --set train.seed={seed} --force (this replaces the seed-{first} model)")  # fmt: skip

"""Which stage ``--arm`` / ``--seed`` export, and the command an untrained one needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atlantis.errors import StageError
from atlantis.export.exporter import export_run
from atlantis.export.source import find_trained
from atlantis.store.run import Run


def test_seeds_resolve_to_their_stage(trained: Run) -> None:
    assert find_trained(trained.root, "baseline").stage == "train/baseline"
    assert find_trained(trained.root, "baseline", seed=0).stage == "train/baseline"
    seed1 = find_trained(trained.root, "baseline", seed=1)
    assert (seed1.stage, seed1.seed) == ("train/baseline/seed-1", 1)
    with pytest.raises(StageError, match=r"stage 'train/baseline/seed-3' has not run.*"
                       r"holds seed 0.*atlantis run CONFIG --out .* loop.seeds >= 4"):  # fmt: skip
        find_trained(trained.root, "baseline", seed=3)


def test_untrained_arm_names_the_train_command(trained: Run, tmp_path: Path) -> None:
    root = trained.root
    with pytest.raises(StageError, match=re.escape(f"stage 'train/naive' has not run. Train it "
                       f"with: atlantis train {root} --arm naive") + "$"):  # fmt: skip
        export_run(root, "naive", tmp_path / "out")
    with pytest.raises(StageError, match=re.escape(f"train {root} --arm naive --set train.seed=2")):
        export_run(root, "naive", tmp_path / "out", seed=2)
    assert not (tmp_path / "out").exists()


def test_provenance_is_recorded(trained: Run, exports: dict[str, Path]) -> None:
    import json

    from atlantis.store.atomic import file_sha256

    config = json.loads((exports["baseline"] / "atlantis-model.json").read_text())
    prov = config["provenance"]
    stage = trained.stage_dir("train/baseline")
    assert prov["run"] == str(trained.root.resolve()) and prov["stage"] == "train/baseline"
    assert (prov["arm"], prov["seed"]) == ("baseline", 0)
    assert prov["checkpoint_sha256"] == file_sha256(stage / "best.pt")
    metrics = json.loads((stage / "metrics.json").read_text())
    assert prov["test_metrics"] == metrics["test"] and prov["best_epoch"] == metrics["best_epoch"]
    assert config["model_hash"] == file_sha256(exports["baseline"] / "model.safetensors")
    assert config["model_info"]["name"] == "test_vit" and config["mean"] == [0.5, 0.5, 0.5]
    head = (config["distance"], config["curvature"], config["embedding_dim"])
    assert head == ("poincare", 0.1, 16)

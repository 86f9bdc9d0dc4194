"""Fixtures for the export tests: a run with trained tiny arms, and their exports.

The images (coloured squares on noisy grey) and the ``test_vit`` recipe at 32 px come from
``tests/train/conftest.py``. One session-scoped run holds ``train/baseline`` (Poincaré
head, seed 0), ``train/sphere`` (a cosine head, trained in a second run and copied in) and
``train/baseline/seed-1`` (that same sphere model standing in for a repeated seed). The
run is only read: each test exports into its own folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from atlantis.config import DataConfig
from atlantis.data.ingest import ingest, load_ingested
from atlantis.data.paths import image_paths
from atlantis.export.exporter import export_run
from atlantis.store.run import Run
from atlantis.train.stage import train
from tests.train.conftest import make_dataset, one_torch_thread, tiny_config  # noqa: F401


def copy_stage(src: Run, src_name: str, dst: Run, dst_name: str, **config: object) -> None:
    """A finished stage of one run as a finished stage of another (``config`` keys changed)."""
    shutil.copytree(src.stage_dir(src_name), dst.stage_dir(dst_name))
    path = dst.manifest_path(dst_name)
    manifest = json.loads(path.read_text())
    manifest["config"].update(config)
    path.write_text(json.dumps({**manifest, "stage": dst_name}))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Ingested, ``train/baseline`` (poincare), ``train/sphere`` and ``train/baseline/seed-1``."""
    root = make_dataset(tmp_path_factory.mktemp("squares"))
    run = Run(tmp_path_factory.mktemp("trained") / "run")
    ingest(run, DataConfig(format="imagefolder", root=str(root), split="zsl"))
    other = Run(tmp_path_factory.mktemp("sphere") / "run")
    shutil.copytree(run.root, other.root)
    train(run, tiny_config(epochs=1), progress=False)
    train(other, tiny_config(epochs=1, head="sphere"), progress=False)
    copy_stage(other, "train/baseline", run, "train/sphere")
    copy_stage(other, "train/baseline", run, "train/baseline/seed-1", seed=1)
    return run


@pytest.fixture(scope="session")
def exports(trained: Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both heads exported once with both extra formats: ``{"baseline": DIR, "sphere": DIR}``."""
    out = tmp_path_factory.mktemp("exports")
    return {arm: export_run(trained.root, arm, out / arm,
                            formats=["onnx", "torchscript"]).folder
            for arm in ("baseline", "sphere")}  # fmt: skip


def stored_test_vectors(run: Run, stage: str) -> tuple[list[Path], np.ndarray]:
    """The stage's test images in the row order of its ``embeddings/test.npy``, and the rows."""
    folder = run.stage_dir(stage) / "embeddings"
    ids = json.loads((folder / "test_ids.json").read_text())
    records = [r for r in load_ingested(run)[0] if r.split == "test"]
    by_id = dict(zip([r.id for r in records], image_paths(run, records), strict=True))
    return [by_id[i] for i in ids], np.load(folder / "test.npy")

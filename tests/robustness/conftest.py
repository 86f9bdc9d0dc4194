"""Fixtures for the attack tests: the training tests' tiny images, and trained tiny arms.

The dataset (coloured squares on noisy grey, 8 test classes x 6 images) and the tiny
``test_vit`` recipe come from ``tests/train/conftest.py``. One session-scoped run holds two
finished arms: ``baseline`` (Poincaré head) and ``sphere`` (a cosine head, trained in a
second run and copied in), so both of the model's distances are attacked.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from atlantis.config import DataConfig
from atlantis.data.ingest import ingest
from atlantis.store.run import Run
from atlantis.train.stage import train
from tests.train.conftest import make_dataset, tiny_config


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def copy_stage(src: Run, src_name: str, dst: Run, dst_name: str) -> None:
    """A finished stage of one run as a finished stage of another, under another name."""
    shutil.copytree(src.stage_dir(src_name), dst.stage_dir(dst_name))
    path = dst.manifest_path(dst_name)
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "stage": dst_name}))


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with the ingest stage done (train 6 classes, val 2, test 8)."""
    root = make_dataset(tmp_path_factory.mktemp("squares"))
    run = Run(tmp_path_factory.mktemp("ingested-run"))
    ingest(run, DataConfig(format="imagefolder", root=str(root), split="zsl"))
    return run.root


@pytest.fixture(scope="session")
def trained(ingested: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ingested + ``train/baseline`` (poincare) + ``train/sphere`` (cosine), 2 epochs each."""
    run = Run(tmp_path_factory.mktemp("trained") / "run")
    shutil.copytree(ingested, run.root)
    train(run, tiny_config(epochs=2), progress=False)
    other = Run(tmp_path_factory.mktemp("sphere") / "run")
    shutil.copytree(ingested, other.root)
    train(other, tiny_config(epochs=2, head="sphere"), progress=False)
    copy_stage(other, "train/baseline", run, "train/sphere")
    return run.root


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Run:
    """A fresh copy of the trained run (each test attacks into its own folder)."""
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    return Run(target)


@pytest.fixture
def ingested_run(ingested: Path, tmp_path: Path) -> Run:
    """A fresh copy of the ingested run, with no train stage."""
    target = tmp_path / "ingested-run"
    shutil.copytree(ingested, target)
    return Run(target)

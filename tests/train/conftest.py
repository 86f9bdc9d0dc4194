"""Fixtures for the training tests: a tiny real image dataset, ingested into a run folder.

Each class is a coloured square (its colour is the class) pasted at a random place and size
on a noisy background of random grey, so an untrained model, which mostly sees the
background, retrieves poorly and training has something to learn. Models are timm's
``test_vit`` (random weights, ~300k parameters) at 32 px: seconds on one CPU thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atlantis.config import DataConfig
from atlantis.data.ingest import ingest
from atlantis.store.run import Run
from atlantis.train.config import TrainConfig

#: 16 distinct colours; zsl puts 8 classes in train (2 of them held out as val), 8 in test.
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128), (220, 190, 255), (170, 110, 40), (128, 0, 0), (0, 0, 128),
           (128, 128, 128)]  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run as fast on one thread, and do not spin-wait on two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def square_image(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 40,
                 rgba: bool = False) -> Image.Image:  # fmt: skip
    background = rng.integers(0, 256)  # a random grey, with noise
    pixels = np.clip(background + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    side = int(rng.integers(size // 2, 3 * size // 4 + 1))
    x, y = rng.integers(0, size - side, 2)
    pixels[y : y + side, x : x + side] = colour
    image = Image.fromarray(pixels)
    if rgba:  # transparent border: must be composited on white
        alpha = np.zeros((size, size), np.uint8)
        alpha[6:-6, 6:-6] = 255
        image = Image.fromarray(np.dstack([pixels, alpha]), mode="RGBA")
    return image


def make_dataset(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, colour in enumerate(COLOURS):
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            square_image(colour, rng, rgba=(i == 0)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("squares"))


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory, dataset_root: Path) -> Path:
    """A run folder with the ingest stage done (train 6 classes, val 2, test 8)."""
    run = Run(tmp_path_factory.mktemp("ingested-run"))
    ingest(run, DataConfig(format="imagefolder", root=str(dataset_root), split="zsl"))
    return run.root


@pytest.fixture
def run(ingested: Path, tmp_path: Path) -> Run:
    """A fresh copy of the ingested run (each test trains into its own folder)."""
    target = tmp_path / "run"
    shutil.copytree(ingested, target)
    return Run(target)


def tiny_config(**overrides) -> TrainConfig:
    """test_vit at 32 px, sphere head, a few small epochs: about a second per epoch."""
    base = dict(backbone="timm:test_vit", pretrained=False, image_size=32, embedding_dim=16,
                head="poincare", lr=1e-3, epochs=3, batch_size=12, m_per_class=3,
                device="cpu", eval_batch_size=32, tensorboard=False, seed=0)  # fmt: skip
    return TrainConfig(**{**base, **overrides})

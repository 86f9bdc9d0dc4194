"""Fakes for the search tests: spy embedders (cosine and Poincaré) and a tiny image folder.

The fake's vector is the image shrunk to 2 x 2 RGB pixels (12 numbers), so different images
get different vectors and a gallery file's own copy is at distance ~0. Every embedded image
is counted on the class, which is how the incremental and resume tests see what ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from atlantis.embed.base import Embedder
from atlantis.embed.registry import EMBEDDERS

CURVATURE = 0.5


class SpyEmbedder(Embedder):
    """2 x 2 RGB thumbnail features; counts images embedded; can be 'killed' after N batches."""

    embedded: ClassVar[list[int]] = []  # batch sizes, across instances
    kill_after: ClassVar[int | None] = None
    distance = "cosine"
    version = 1

    @property
    def key(self) -> str:
        return f"spy-{self.distance} v{self.version}"

    @property
    def dim(self) -> int:
        return 12

    def _load(self) -> None:
        pass

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        if self.kill_after is not None and len(self.embedded) >= self.kill_after:
            raise KeyboardInterrupt  # as if the process were killed mid-build
        type(self).embedded.append(len(images))
        x = np.stack([np.asarray(im.resize((2, 2), Image.BILINEAR), np.float32).ravel()
                      for im in images]) / 255.0 - 0.5  # fmt: skip
        return self.to_space(x)

    def to_space(self, x: np.ndarray) -> np.ndarray:
        return x


class BallSpy(SpyEmbedder):
    """The same features mapped into the Poincaré ball of curvature ``CURVATURE``."""

    distance = "poincare"
    curvature = CURVATURE

    def to_space(self, x: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
        return x / norm * np.tanh(norm) * 0.95 / np.sqrt(CURVATURE)


class OtherSpy(SpyEmbedder):
    version = 2


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> type[SpyEmbedder]:
    """Register ``spy-cosine``, ``spy-ball`` and ``spy-other`` for this test; reset counts."""
    for name, cls in (("spy-cosine", SpyEmbedder), ("spy-ball", BallSpy),
                      ("spy-other", OtherSpy)):  # fmt: skip
        monkeypatch.setitem(EMBEDDERS._entries, name, cls)
        monkeypatch.setitem(EMBEDDERS._help, name, "test spy")
    monkeypatch.setattr(SpyEmbedder, "embedded", [])
    monkeypatch.setattr(SpyEmbedder, "kill_after", None)
    return SpyEmbedder


def write_image(path: Path, rng: np.random.Generator, colour: np.ndarray) -> Path:
    """A 16 px image of ``colour`` with a random 2 x 2 block pattern (distinct vectors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = np.clip(colour + rng.normal(0, 40, (2, 2, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8))).save(path)
    return path


@pytest.fixture
def gallery_dir(tmp_path: Path) -> Path:
    """4 classes x 5 images in class folders."""
    rng = np.random.default_rng(0)
    root = tmp_path / "gallery"
    for c in range(4):
        colour = rng.integers(40, 215, 3)
        for i in range(5):
            write_image(root / f"class{c}" / f"{i}.png", rng, colour)
    return root

"""The shared Embedder machinery, driven by a fake embedder registered only in these tests."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.embed.base import Embedder, NonFiniteEmbeddingError, resolve_device
from atlantis.embed.cache import EmbeddingCache
from atlantis.embed.registry import EMBEDDERS, create_embedder
from atlantis.errors import ConfigError, DataError

NAN_COLOUR = (13, 13, 13)  # the fake model "blows up" on this exact colour


class FakeEmbedder(Embedder):
    """Vector = (mean R, mean G, mean B, width); float64 on purpose (the base casts)."""

    def __init__(self, fail_on_batch: int | None = None, **common) -> None:
        super().__init__(**common)
        self.batches: list[int] = []
        self.loads = 0
        self.fail_on_batch = fail_on_batch

    @property
    def key(self) -> str:
        return "fake v1"

    @property
    def dim(self) -> int:
        return 4

    def _load(self) -> None:
        self.loads += 1

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.load()
        if self.fail_on_batch is not None and len(self.batches) == self.fail_on_batch:
            raise KeyboardInterrupt  # as if the run were killed mid-way
        self.batches.append(len(images))
        rows = []
        for im in images:
            assert im.mode == "RGB"
            mean = np.asarray(im, dtype=np.float64).mean(axis=(0, 1))
            rows.append([*mean, im.width] if tuple(mean) != NAN_COLOUR else [np.nan] * 4)
        return np.asarray(rows)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register ``test-fake`` for this test only (monkeypatch restores the registry)."""
    monkeypatch.setitem(EMBEDDERS._entries, "test-fake", FakeEmbedder)
    monkeypatch.setitem(EMBEDDERS._help, "test-fake", "fake")


def colour_files(folder: Path, n: int) -> tuple[list[Path], np.ndarray]:
    """``n`` distinct solid-colour PNGs of varying width, and their expected vectors."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, expected = [], []
    for i in range(n):
        colour, width = (i * 7 % 256, 50 + i, 200), 4 + i % 3
        path = folder / f"c{i:02d}.png"
        Image.new("RGB", (width, 3), colour).save(path)
        paths.append(path)
        expected.append([*colour, width])
    return paths, np.asarray(expected, dtype=np.float32)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batches_order_and_output_contract(fake: None, tmp_path: Path, num_workers: int) -> None:
    paths, expected = colour_files(tmp_path, 7)
    order = list(range(7))
    random.Random(1).shuffle(order)
    emb = create_embedder("test-fake", batch_size=3, num_workers=num_workers)
    assert isinstance(emb, FakeEmbedder) and emb.loads == 0  # construction loads nothing

    out = emb.embed_files([paths[i] for i in order], progress=False)
    assert emb.batches == [3, 3, 1] and emb.loads == 1
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (7, 4)
    np.testing.assert_array_equal(out, expected[order])


def test_cache_hits_counted_and_duplicates_embedded_once(fake: None, tmp_path: Path) -> None:
    paths, expected = colour_files(tmp_path / "a", 5)
    copy = tmp_path / "copy-of-c01.png"
    copy.write_bytes(paths[1].read_bytes())
    cache = EmbeddingCache(tmp_path / "cache", "fake v1")

    emb = create_embedder("test-fake", batch_size=2)
    emb.embed_files(paths[:3], cache=cache, progress=False)
    assert emb.last_stats.computed == 3

    out = emb.embed_files([*paths, copy], cache=cache, progress=False)
    stats = emb.last_stats
    assert (stats.files, stats.unique, stats.cached, stats.computed) == (6, 5, 3, 2)
    np.testing.assert_array_equal(out, np.vstack([expected, expected[1]]))


def test_killed_run_keeps_finished_batches(fake: None, tmp_path: Path) -> None:
    paths, expected = colour_files(tmp_path, 7)
    cache = EmbeddingCache(tmp_path / "cache", "fake v1")
    with pytest.raises(KeyboardInterrupt):
        create_embedder("test-fake", batch_size=2, fail_on_batch=2).embed_files(
            paths, cache=cache, progress=False
        )
    assert len(EmbeddingCache(tmp_path / "cache", "fake v1")) == 4

    resumed = create_embedder("test-fake", batch_size=2)
    out = resumed.embed_files(paths, cache=EmbeddingCache(tmp_path / "cache", "fake v1"),
                              progress=False)  # fmt: skip
    assert resumed.batches == [2, 1]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_unreadable_file_raises_data_error_naming_it(
    fake: None, tmp_path: Path, num_workers: int
) -> None:
    paths, _ = colour_files(tmp_path, 3)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    emb = create_embedder("test-fake", num_workers=num_workers)
    with pytest.raises(DataError, match=re.escape("broken.jpg")) as err:
        emb.embed_files([*paths, broken], progress=False)
    assert err.value.path == broken

    missing = tmp_path / "gone.png"
    with pytest.raises(DataError, match=re.escape("gone.png")):
        emb.embed_files([paths[0], missing], progress=False)


def test_truncated_image_raises_data_error(fake: None, tmp_path: Path) -> None:
    path = tmp_path / "half.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match=re.escape("half.png")):
        create_embedder("test-fake").embed_files([path], progress=False)


def test_nan_vector_raises_naming_the_file(fake: None, tmp_path: Path) -> None:
    paths, _ = colour_files(tmp_path, 2)
    bad = tmp_path / "nan-maker.png"
    Image.new("RGB", (4, 4), NAN_COLOUR).save(bad)
    cache = EmbeddingCache(tmp_path / "cache", "fake v1")
    with pytest.raises(NonFiniteEmbeddingError, match=re.escape("nan-maker.png")):
        create_embedder("test-fake").embed_files([*paths, bad], cache=cache, progress=False)
    assert len(EmbeddingCache(tmp_path / "cache", "fake v1")) == 0  # nothing bad was cached


def test_transparent_pixels_become_white(fake: None, tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "emoji.png")
    palette = Image.new("P", (4, 4), 0)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png")

    emb = create_embedder("test-fake")
    out = emb.embed_files([tmp_path / "emoji.png", tmp_path / "palette.png"], progress=False)
    np.testing.assert_allclose(out[0, :3], [255, 255 * 15 / 16, 255 * 15 / 16])
    np.testing.assert_allclose(out[1, :3], [255, 255, 255])
    np.testing.assert_allclose(emb.embed_images([rgba], progress=False), out[:1])


def test_embed_images_and_empty_inputs(fake: None) -> None:
    images = [Image.new("L", (5, 2), 100), Image.new("RGB", (3, 3), (1, 2, 3))]
    emb = create_embedder("test-fake", batch_size=1)
    np.testing.assert_array_equal(
        emb.embed_images(images, progress=False), [[100, 100, 100, 5], [1, 2, 3, 3]]
    )
    assert emb.embed_images([], progress=False).shape == (0, 4)
    assert emb.embed_files([], progress=False).shape == (0, 4)


def test_bad_options_are_config_errors(fake: None) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        create_embedder("test-fake", batch_size=0)
    with pytest.raises(ConfigError, match=r"valid names: .*efficientnet-lite0"):
        create_embedder("no-such-backend:x")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


def test_cuda_request_without_gpu_is_a_config_error() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda:0")

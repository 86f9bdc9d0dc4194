"""EmbeddingCache: durable, per-embedder, content-addressed; damage costs recomputation only."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.embed.base import Embedder
from atlantis.embed.cache import EmbeddingCache
from atlantis.errors import DataError

KEY = "fake-embedder v1 size=8"


def vectors(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def hashes(n: int, prefix: str = "") -> list[str]:
    return [hashlib.sha256(f"{prefix}{i}".encode()).hexdigest() for i in range(n)]


class MeanColour(Embedder):
    """Counts the images it embeds; vector = mean RGB, so results are easy to predict."""

    def __init__(self, **common) -> None:
        super().__init__(**common)
        self.seen = 0

    key = KEY  # type: ignore[assignment]
    dim = 3  # type: ignore[assignment]

    def _load(self) -> None:
        pass

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        self.seen += len(images)
        return np.stack([np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) for im in images])


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGB", (6, 5), (i * 10 % 256, 100, 200)).save(path)
        paths.append(path)
    return paths


def test_round_trip_and_layout(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY)
    assert len(cache) == 0 and cache.get_many(hashes(3)) == {}
    cache.put_many(hashes(3), vectors(3))
    cache.put_many(hashes(2, "b"), vectors(2, seed=1))

    folder = tmp_path / hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert cache.root == folder
    assert (folder / "key.txt").read_text().strip() == KEY
    assert len(list(folder.glob("shard-*.npz"))) == 2
    assert not list(folder.glob("*.tmp"))  # atomic writes leave no temp files

    reopened = EmbeddingCache(tmp_path, KEY)
    assert len(reopened) == 5
    got = reopened.get_many([*hashes(3), "not-there"])
    assert set(got) == set(hashes(3))
    np.testing.assert_array_equal(np.stack([got[h] for h in hashes(3)]), vectors(3))
    assert all(v.dtype == np.float32 for v in got.values())


def test_embedders_never_share_vectors(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path, KEY).put_many(hashes(1), vectors(1))
    other = EmbeddingCache(tmp_path, KEY + " size=9")
    assert other.root != EmbeddingCache(tmp_path, KEY).root
    assert len(other) == 0


def test_key_file_mismatch_is_an_error(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY)
    cache.put_many(hashes(1), vectors(1))
    (cache.root / "key.txt").write_text("someone else\n")
    with pytest.raises(DataError, match=re.escape("key.txt")):
        len(EmbeddingCache(tmp_path, KEY))


def test_second_run_computes_nothing(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 5)
    first = MeanColour(batch_size=2)
    out1 = first.embed_files(paths, cache=EmbeddingCache(tmp_path / "cache", KEY), progress=False)
    assert first.seen == 5 and first.last_stats.computed == 5

    second = MeanColour(batch_size=2)
    out2 = second.embed_files(paths, cache=EmbeddingCache(tmp_path / "cache", KEY), progress=False)
    assert second.seen == 0
    assert second.last_stats.cached == 5 and second.last_stats.computed == 0
    np.testing.assert_array_equal(out1, out2)


def test_corrupt_shard_is_ignored_and_recomputed(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 6)
    MeanColour(batch_size=2).embed_files(
        paths, cache=EmbeddingCache(tmp_path / "cache", KEY), progress=False
    )
    shards = sorted(EmbeddingCache(tmp_path / "cache", KEY).root.glob("shard-*.npz"))
    assert len(shards) == 3
    shards[0].write_bytes(shards[0].read_bytes()[:50])  # truncated, as after a disk error

    again = MeanColour(batch_size=2)
    cache = EmbeddingCache(tmp_path / "cache", KEY)
    with pytest.warns(RuntimeWarning, match="unreadable embedding cache shard"):
        out = again.embed_files(paths, cache=cache, progress=False)
    assert again.seen == 2  # only the lost shard's images
    assert out.shape == (6, 3)
    np.testing.assert_allclose(out[:, 1], 100.0)


def test_compaction_merges_shards(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, KEY, max_shards=2)
    for i in range(4):
        cache.put_many(hashes(3, f"s{i}"), vectors(3, seed=i))
    cache.compact_if_needed()
    assert len(list(cache.root.glob("shard-*.npz"))) == 1
    reopened = EmbeddingCache(tmp_path, KEY)
    assert len(reopened) == 12
    np.testing.assert_array_equal(
        np.stack(list(reopened.get_many(hashes(3, "s2")).values())), vectors(3, seed=2)
    )


def test_put_many_validates_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 2 vectors"):
        EmbeddingCache(tmp_path, KEY).put_many(hashes(2), vectors(3))

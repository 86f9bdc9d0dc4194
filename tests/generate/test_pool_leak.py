"""The pool leak check: exact and resized copies of dataset images found, look-alikes not."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from atlantis.generate import pool_leak
from atlantis.generate.pool_leak import find_leaks


def drawing(colours: tuple[str, str, str], size: int = 64) -> Image.Image:
    """Three filled shapes on white: a picture with edges and flat colour regions."""
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    s = size / 64
    d.ellipse([4 * s, 4 * s, 34 * s, 34 * s], fill=colours[0], outline="black", width=2)
    d.rectangle([30 * s, 28 * s, 60 * s, 58 * s], fill=colours[1])
    d.polygon([(6 * s, 60 * s), (26 * s, 38 * s), (28 * s, 62 * s)], fill=colours[2])
    return im


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, list[tuple[str, str, Path]]]:
    data = tmp_path / "data"
    data.mkdir()
    a, b = drawing(("red", "blue", "green")), drawing(("orange", "purple", "teal"))
    a.save(data / "a.png")
    b.save(data / "b.png")
    pool = tmp_path / "pool"
    pool.mkdir()
    rgba = a.convert("RGBA")  # the same pixels, another file: an alpha channel, BMP beside it
    rgba.save(pool / "exact.png")
    a.save(pool / "exact.bmp")
    buf = io.BytesIO()
    a.resize((128, 128), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=85)
    (pool / "resized.jpg").write_bytes(buf.getvalue())
    b.resize((48, 48), Image.Resampling.LANCZOS).save(pool / "smaller.png")
    drawing(("red", "blue", "yellow")).save(pool / "recoloured.png")  # one shape differs
    drawing(("navy", "pink", "olive")).save(pool / "other.png")
    (pool / "broken.png").write_bytes(b"not an image")
    dataset = [("a", "test", data / "a.png"), ("b", "train", data / "b.png")]
    return pool, dataset


FILES = ["broken.png", "exact.bmp", "exact.png", "other.png", "recoloured.png", "resized.jpg",
         "smaller.png"]  # fmt: skip


def test_exact_and_resized_copies_are_found_and_look_alikes_are_not(folders) -> None:
    pool, dataset = folders
    leaks = {x.file: x for x in find_leaks(pool, FILES, dataset)}
    assert sorted(leaks) == ["exact.bmp", "exact.png", "resized.jpg", "smaller.png"]
    assert (leaks["exact.png"].kind, leaks["exact.png"].image_id) == ("exact", "a")
    assert leaks["exact.png"].split == "test" and leaks["exact.bmp"].kind == "exact"
    assert leaks["resized.jpg"].kind == "near" and leaks["resized.jpg"].image_id == "a"
    assert leaks["smaller.png"].image_id == "b" and leaks["smaller.png"].split == "train"
    assert 0 < leaks["resized.jpg"].diff <= pool_leak.NEAR_MAX
    assert "resized.jpg = test image 'a' (a near copy" in leaks["resized.jpg"].describe()
    assert "(the same pixels)" in leaks["exact.png"].describe()


def test_the_verdict_is_cached_per_pool_and_dataset(
    folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, dataset = folders
    cache = tmp_path / "cache" / "leaks.json"
    first = find_leaks(pool, FILES, dataset, cache)
    decoded: list[Path] = []
    real = pool_leak.signature
    monkeypatch.setattr(pool_leak, "signature", lambda p: (decoded.append(p), real(p))[1])
    assert find_leaks(pool, FILES, dataset, cache) == first and decoded == []
    drawing(("black", "black", "black")).save(pool / "other.png")  # a pool file changed
    assert find_leaks(pool, FILES, dataset, cache) == first and len(decoded) == 9
    cache.write_text("{ torn")
    assert find_leaks(pool, FILES, dataset, cache) == first  # recomputed, not trusted


def test_the_smoothed_thumbnail_is_a_three_by_three_mean() -> None:
    thumb = np.zeros((4, 4, 3), dtype=np.uint8)
    thumb[0, 0] = 90
    out = pool_leak.smoothed(thumb).reshape(4, 4, 3)
    assert out[0, 0, 0] == pytest.approx(40.0)  # edge repeated: 4 of 9 cells hold 90
    assert out[1, 1, 0] == pytest.approx(10.0) and out[3, 3, 0] == 0

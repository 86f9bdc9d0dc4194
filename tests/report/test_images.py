"""The report's embedded review images: transparent ones on white, like the embedder."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from atlantis.report.charts import data_uri


def decoded(uri: str | None) -> Image.Image:
    assert uri is not None and uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA")


@pytest.mark.parametrize("suffix", [".png", ".webp", ".gif"])
def test_transparent_images_are_embedded_on_white(tmp_path: Path, suffix: str) -> None:
    im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (20, 0, 40, 40))
    path = tmp_path / f"emoji{suffix}"
    im.save(path)
    out = decoded(data_uri(path))
    assert out.getpixel((2, 20)) == (255, 255, 255, 255)
    assert out.getpixel((38, 20))[2] > 200  # the opaque part keeps its colour


def test_a_small_opaque_png_is_embedded_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (30, 20), (10, 20, 30)).save(path)
    uri = data_uri(path)
    assert uri is not None and base64.b64decode(uri.split(",", 1)[1]) == path.read_bytes()


def test_missing_or_unreadable_images_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert data_uri(tmp_path / "bad.png") is None and data_uri(tmp_path / "gone.png") is None

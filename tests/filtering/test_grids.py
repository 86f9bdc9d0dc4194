"""Review grids show transparent images the way the embedder saw them: on white."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from atlantis.filtering.grids import LABEL_W, PAD, THUMB, write_grid

RED = (255, 0, 0)


def half_transparent(mode: str) -> Image.Image:
    """64x64: the left half fully transparent over black pixel values, the right half opaque
    red (dark grey for the greyscale mode)."""
    if mode == "RGBA":
        im = Image.new("RGBA", (THUMB, THUMB), (0, 0, 0, 0))
        im.paste((*RED, 255), (THUMB // 2, 0, THUMB, THUMB))
    elif mode == "LA":
        im = Image.new("LA", (THUMB, THUMB), (0, 0))
        im.paste((60, 255), (THUMB // 2, 0, THUMB, THUMB))
    else:  # a palette image whose entry 0 (black) is the transparent one
        im = Image.new("P", (THUMB, THUMB), 0)
        im.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
        im.paste(1, (THUMB // 2, 0, THUMB, THUMB))
        im.info["transparency"] = 0
    return im


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_a_transparent_pixel_comes_out_white(tmp_path: Path, mode: str) -> None:
    src = tmp_path / f"emoji-{mode}.png"
    half_transparent(mode).save(src)
    out = tmp_path / "grid.png"
    write_grid(out, [src], [src], per_row=1)
    with Image.open(out) as grid:
        grid = grid.convert("RGB")
        for row in (0, 1):  # the kept row and the removed row
            y = PAD + row * (THUMB + PAD) + THUMB // 2
            assert grid.getpixel((LABEL_W + 4, y)) == (255, 255, 255)
            opaque = grid.getpixel((LABEL_W + THUMB - 4, y))
            assert opaque == (RED if mode != "LA" else (60, 60, 60))


def test_opaque_images_keep_their_colours(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    Image.new("RGB", (THUMB, THUMB), (0, 0, 0)).save(src)
    out = tmp_path / "grid.png"
    write_grid(out, [src], [], per_row=1)
    with Image.open(out) as grid:
        r, g, b = grid.convert("RGB").getpixel((LABEL_W + THUMB // 2, PAD + THUMB // 2))
        assert max(r, g, b) < 10  # a black photo stays black: only transparency turns white

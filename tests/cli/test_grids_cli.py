"""The filter's review grids show transparent images on white, through the real CLI.

A small manifest dataset is ingested and embedded (EfficientNet-Lite0 at 32 px, offline),
a naive plan is made, and ``atlantis generate --source retrieve`` takes its images from a
pool of RGBA PNGs: an opaque square on fully transparent pixels that hold black (what
emoji and logos hold). ``atlantis filter`` then writes ``filter/<arm>/grids/*.png``, and
every thumbnail in them must show the transparent part white, as the embedder saw it,
not black (``convert("RGB")`` drops the alpha and shows the colour underneath).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.filtering.grids import LABEL_W, PAD, THUMB

CLASSES = {"red kite": (200, 40, 40), "blue jay": (40, 60, 200),
           "green heron": (40, 180, 60), "yellow warbler": (220, 200, 40)}  # fmt: skip
SIDE = 16  # pool images: SIDE x SIDE, the middle half opaque, the border transparent black
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ATLANTIS_HOME", str(tmp_path / "atlantis-home"))  # pool caches


def make_dataset(root: Path) -> Path:
    rows = []
    for c, (label, colour) in enumerate(CLASSES.items()):
        for i in range(4):
            rel = f"images/{c}_{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (SIDE, SIDE), tuple(v + 8 * i for v in colour)).save(root / rel)
            rows.append({"id": f"c{c}i{i}", "path": rel, "label": label})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def make_pool(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    lines, q = [], SIDE // 4
    for j in range(n):
        im = Image.new("RGBA", (SIDE, SIDE), (*BLACK, 0))
        im.paste((30 * j, 100, 200 - 20 * j, 255), (q, q, SIDE - q, SIDE - q))
        im.save(folder / f"emoji{j}.png")
        lines.append(f"emoji{j}.png\tan emoji of a {list(CLASSES)[j % len(CLASSES)]}\n")
    (folder / "captions.tsv").write_text("".join(lines))
    return folder


def test_filter_grids_show_transparent_pixels_white(tmp_path: Path) -> None:
    cli = CliRunner()
    run = tmp_path / "run"
    root = make_dataset(tmp_path / "data")
    pool = make_pool(tmp_path / "pool", 8)
    for args in (
        ["ingest", "--format", "manifest", "--root", str(root), "--out", str(run),
         "--val-fraction", "0"],
        ["embed", str(run), "--image-size", "32", "--device", "cpu"],
        ["plan", str(run), "--planner", "naive", "--arm", "naive", "--budget", "4",
         "--llm", "rules"],
        ["generate", str(run), "--arm", "naive", "--source", "retrieve", "-O", f"pool={pool}",
         "-O", f"captions={pool / 'captions.tsv'}"],
        ["filter", str(run), "--arm", "naive"],
    ):  # fmt: skip
        res = cli.invoke(app, args, catch_exceptions=False)
        assert res.exit_code == 0, (args[0], res.output)

    # The made images are the pool's, transparency and all.
    made = sorted((run / "generate" / "naive" / "images").rglob("*.png"))
    assert len(made) == 4
    for path in made:
        with Image.open(path) as im:
            assert im.mode == "RGBA" and im.getpixel((0, 0)) == (*BLACK, 0), path

    stats = json.loads((run / "filter" / "naive" / "stats.json").read_text())
    folder = run / "filter" / "naive"
    cell, shown = THUMB + PAD, 0
    for row in stats["per_class"]:
        with Image.open(folder / row["grid"]) as im:
            grid = im.convert("RGB")
        assert grid.width >= LABEL_W + cell, row["grid"]
        for line, n in enumerate((row["kept"], row["removed"])):
            y = PAD + line * cell
            for col in range(n):
                x = LABEL_W + col * cell
                tile = grid.crop((x, y, x + THUMB, y + THUMB))
                # The opaque middle is there (not the grey of an unreadable file)...
                middle = tile.getpixel((THUMB // 2, THUMB // 2))
                assert middle not in (WHITE, BLACK, (200, 200, 200)), (row["grid"], middle)
                # ...and the transparent border is white, everywhere around it.
                border = THUMB // 4 - 2  # the opaque square starts at THUMB // 4
                for box in ((0, 0, THUMB, border), (0, THUMB - border, THUMB, THUMB),
                            (0, 0, border, THUMB), (THUMB - border, 0, THUMB, THUMB)):  # fmt: skip
                    colours = {c for _, c in tile.crop(box).getcolors(THUMB * THUMB)}
                    assert colours == {WHITE}, (row["grid"], line, col, box, colours)
                shown += 1
    assert shown == 4  # every synthetic image appears in a grid, kept or removed

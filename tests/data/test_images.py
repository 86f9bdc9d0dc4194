"""Opening user images: pixels decoded to the end, decompression bombs named by file."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest
from PIL import Image, ImageFile

import atlantis
from atlantis.data.images import check_decodes, open_image
from atlantis.errors import DataError
from tests.data.damage import noisy_image, truncate


@pytest.mark.parametrize("name", ["cut.jpg", "cut.png"])
def test_cut_short_image_passes_verify_but_not_the_decode_check(tmp_path: Path, name: str) -> None:
    path = truncate(tmp_path / name)
    with Image.open(path) as im:
        im.verify()  # the old check: headers (and PNG checksums) are intact
    with pytest.raises(OSError, match="truncated"):
        check_decodes(path)


@pytest.mark.parametrize("name", ["ok.jpg", "ok.png", "ok.webp", "ok.gif", "ok.tiff", "ok.bmp"])
def test_whole_images_pass(tmp_path: Path, name: str) -> None:
    check_decodes(noisy_image(tmp_path / name))


def test_a_large_jpeg_is_decoded_at_reduced_scale_yet_checked_to_the_end(tmp_path: Path) -> None:
    path = noisy_image(tmp_path / "big.jpg", size=640)
    check_decodes(path)
    with Image.open(path) as im:
        im.draft(None, (1, 1))
        assert im.size == (80, 80)  # what the check decodes: 1/8 of the pixels
    truncate(path)  # noise again at 48 px, then cut
    with pytest.raises(OSError, match="truncated"):
        check_decodes(path)


def test_bomb_warning_names_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = noisy_image(tmp_path / "large.png", size=40)  # 1,600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(Image.DecompressionBombWarning) as caught:
        check_decodes(path)  # opens twice (verify, then load): one warning
    messages = [str(w.message) for w in caught if w.category is Image.DecompressionBombWarning]
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}: Image size (1600 pixels) exceeds limit of 1000")
    assert "shrink it or remove it" in messages[0]


def test_bomb_error_is_a_data_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = noisy_image(tmp_path / "huge.png", size=40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,600 > 2 x 500: refused
    with pytest.raises(DataError, match="decompression bomb") as err:
        open_image(path)
    assert err.value.path == path and str(err.value).startswith(f"{path}: refused")
    assert "shrink the image or remove it" in str(err.value)


def test_a_warnings_as_errors_filter_still_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = noisy_image(tmp_path / "large.png", size=40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(Image.DecompressionBombWarning, match=str(path)):
            open_image(path)


def test_other_warnings_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = noisy_image(tmp_path / "ok.png")
    real_open = Image.open

    def noisy_open(fp, *args, **kwargs):
        warnings.warn("a plugin's own warning", UserWarning, stacklevel=2)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", noisy_open)
    with pytest.warns(UserWarning, match="a plugin's own warning"):
        open_image(path).close()


def test_tolerated_truncation_is_refused_not_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = truncate(tmp_path / "cut.jpg")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match="LOAD_TRUNCATED_IMAGES is set to True"):
        check_decodes(path)


def test_nothing_tolerates_truncated_images() -> None:
    """No source file sets PIL's switch, and the CLI and the image readers leave it alone."""
    src = Path(atlantis.__file__).parent
    setters = [p for p in src.rglob("*.py") if "LOAD_TRUNCATED_IMAGES =" in p.read_text("utf-8")]
    assert setters == []
    for name in ("atlantis.cli.main", "atlantis.embed.preprocess", "atlantis.data.readers",
                 "atlantis.generate.retrieve_source"):  # fmt: skip
        importlib.import_module(name)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False

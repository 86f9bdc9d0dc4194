"""The shared Captioner machinery and the caption cache, driven by a fake captioner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from atlantis.caption.base import Captioner
from atlantis.caption.cache import CaptionCache
from atlantis.embed.cache import cache_dir_name
from atlantis.errors import DataError

from .conftest import noise_images, write_images


class FakeCaptioner(Captioner):
    """Caption = the image's size and top-left colour; can misbehave on demand."""

    def __init__(self, answer: object = None, **common) -> None:
        super().__init__(**common)
        self.answer = answer
        self.loads = 0

    @property
    def key(self) -> str:
        return "fake v1"

    def _load(self) -> None:
        self.loads += 1

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]
        return [f" {im.width}x{im.height}\n  {im.getpixel((0, 0))} " for im in images]


def test_captions_are_clean_lines_and_model_loads_once(tmp_path: Path) -> None:
    cap = FakeCaptioner(batch_size=2)
    paths = write_images(tmp_path, noise_images(3))
    out = cap.caption_files(paths, progress=False)
    assert out[0].startswith("64x48 (") and "\n" not in out[0] and out[0] == out[0].strip()
    assert cap.loads == 1 and cap.last_stats.computed == 3


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    paths = write_images(tmp_path, noise_images(2))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png"):
        FakeCaptioner().caption_files([*paths, bad], progress=False)
    with pytest.raises(DataError, match=r"missing\.png"):
        FakeCaptioner().caption_files([tmp_path / "missing.png"], progress=False)


@pytest.mark.parametrize(("answer", "error"), [(["one"], RuntimeError), ([1, 2], TypeError)])
def test_output_contract_is_enforced(answer: list, error: type, tmp_path: Path) -> None:
    paths = write_images(tmp_path, noise_images(2))
    with pytest.raises(error, match="fake v1"):
        FakeCaptioner(answer=answer).caption_files(paths, progress=False)


def test_cache_of_another_captioner_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache is for captioner"):
        FakeCaptioner().caption_files([], cache=CaptionCache(tmp_path, "other"), progress=False)


def test_cache_round_trip_and_layout(tmp_path: Path) -> None:
    cache = CaptionCache(tmp_path, "model A")
    cache.put_many(["h1", "h2"], ["a cat", "un chat ü"])
    cache.put_many(["h3"], ["a dog"])
    again = CaptionCache(tmp_path, "model A")
    assert again.get_many(["h1", "h2", "h3", "h4"]) == {"h1": "a cat", "h2": "un chat ü",
                                                        "h3": "a dog"}  # fmt: skip
    assert "h4" not in again and len(again) == 3
    folder = tmp_path / cache_dir_name("model A")
    assert (folder / "key.txt").read_text().strip() == "model A"
    lines = (folder / "captions.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"hash": "h1", "caption": "a cat"}
    assert len(CaptionCache(tmp_path, "model B")) == 0  # other keys never mix
    with pytest.raises(ValueError, match="2 hashes but 1 captions"):
        cache.put_many(["a", "b"], ["x"])


def test_torn_last_line_is_ignored_then_repaired(tmp_path: Path) -> None:
    cache = CaptionCache(tmp_path, "k")
    cache.put_many(["h1"], ["first"])
    with open(cache.path, "a", encoding="utf-8") as fh:
        fh.write('{"hash": "h2", "capt')  # a write cut short by kill -9
    reread = CaptionCache(tmp_path, "k")
    assert reread.get_many(["h1", "h2"]) == {"h1": "first"}
    reread.put_many(["h2"], ["second"])
    assert CaptionCache(tmp_path, "k").get_many(["h1", "h2"]) == {"h1": "first", "h2": "second"}


def test_bad_line_in_the_middle_warns_and_is_skipped(tmp_path: Path) -> None:
    cache = CaptionCache(tmp_path, "k")
    cache.put_many(["h1"], ["first"])
    with open(cache.path, "a", encoding="utf-8") as fh:
        fh.write('garbage\n[1, 2]\n{"hash": "h2", "caption": "second"}\n')
    with pytest.warns(RuntimeWarning, match=r"2 unreadable caption cache line\(s\) \(line 2, 3\)"):
        assert len(CaptionCache(tmp_path, "k")) == 2


def test_folder_of_another_key_is_refused(tmp_path: Path) -> None:
    CaptionCache(tmp_path, "k").put_many(["h"], ["c"])
    (tmp_path / cache_dir_name("k") / "key.txt").write_text("someone else\n")
    with pytest.raises(DataError, match="belongs to captioner"):
        len(CaptionCache(tmp_path, "k"))

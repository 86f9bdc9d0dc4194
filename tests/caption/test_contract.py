"""One contract, every captioner: one string per image, deterministic, honest keys, resumable.

Each backend runs through the same entry point the stage uses (``caption_records``) on real
PNG files, one of them a byte-identical duplicate under another name. ``metadata`` runs
with a ``tags`` fallback for the records that have no caption, so its cache is exercised too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from atlantis.caption.base import Captioner
from atlantis.caption.cache import CaptionCache
from atlantis.caption.metadata import MetadataCaptioner
from atlantis.caption.registry import create_captioner
from atlantis.data.records import ImageRecord

from .conftest import API_KEY_ENV, noise_images, write_images

Setup = tuple[str, dict[str, Any], dict[str, Any]]  # spec, options, options for other captions


@pytest.fixture(params=["metadata", "tags", "transformers", "openai"])
def backend(request: pytest.FixtureRequest) -> Setup:
    if request.param == "metadata":
        return "metadata", {"fallback": "tags"}, {"fallback": "tags", "fallback_options":
                                                  {"top_k": 1}}  # fmt: skip
    if request.param == "tags":
        return "tags", {}, {"top_k": 1}
    if request.param == "transformers":
        request.getfixturevalue("offline")
        folder = request.getfixturevalue("tiny_blip")
        options = {"local_files_only": True, "max_new_tokens": 6}
        return f"transformers:{folder}", options, {**options, "prompt": "a photo of"}
    api = request.getfixturevalue("vision_api")
    request.getfixturevalue("api_key")
    options = {"base_url": api.base_url, "api_key_env": API_KEY_ENV, "concurrency": 2}
    return "openai:test-vlm", options, {**options, "max_side": 32}


def dataset(tmp_path: Path) -> list[ImageRecord]:
    """Six records over five distinct images (the last duplicates the first's bytes)."""
    paths = write_images(tmp_path / "images", noise_images(5))
    shutil.copy(paths[0], tmp_path / "images" / "copy.png")
    paths.append(tmp_path / "images" / "copy.png")
    # Two have dataset captions (only ``metadata`` reads them).
    return [
        ImageRecord(id=f"r{i}", path=p.relative_to(tmp_path).as_posix(), label=f"c{i % 2}",
                    captions=[f"dataset caption {i}"] if i in (1, 3) else [])
        for i, p in enumerate(paths)
    ]  # fmt: skip


def model_of(captioner: Captioner) -> Captioner:
    """The captioner that actually looks at pixels (metadata's fallback)."""
    return captioner.fallback if isinstance(captioner, MetadataCaptioner) else captioner  # type: ignore[return-value]


def test_captioner_contract(backend: Setup, tmp_path: Path) -> None:
    spec, options, other_options = backend
    records = dataset(tmp_path)
    cap = create_captioner(spec, batch_size=2, **options)

    out = cap.caption_records(records, tmp_path, progress=False)
    assert len(out) == len(records) and all(isinstance(t, str) and t for t in out)
    assert all(t == " ".join(t.split()) for t in out)  # one clean line each
    assert out[-1] == out[0]  # same bytes, same caption
    if spec == "metadata":
        assert [out[1], out[3]] == ["dataset caption 1", "dataset caption 3"]  # untouched
        assert cap.last_stats.fallback == 4 and not cap.is_model
    else:
        assert len(set(out[:5])) > 1  # the pixels matter

    # Deterministic; and the key names the captions, not how they are computed.
    assert cap.caption_records(records, tmp_path, progress=False) == out
    fresh = create_captioner(spec, batch_size=3, **options)
    assert fresh.key == cap.key  # runtime options are not part of the key
    assert create_captioner(spec, **other_options).key != cap.key

    # Killed after the first batch: that batch is in the cache, nothing else.
    cache_dir = tmp_path / "cache"
    model = model_of(cap)
    calls = 0
    real_batch = model.caption_batch

    def dies_on_second_batch(images: list) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # what kill/Ctrl-C does mid-run
        return real_batch(images)

    model.caption_batch = dies_on_second_batch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        cap.caption_records(records, tmp_path, cache_dir, progress=False)
    del model.caption_batch  # back to the class's method
    assert len(CaptionCache(cache_dir, model.key)) == 2

    # Resumed: only the missing images run, with the same result; then nothing runs.
    assert cap.caption_records(records, tmp_path, cache_dir, progress=False) == out
    unique = 3 if spec == "metadata" else 5
    assert (cap.last_stats.cached, cap.last_stats.computed) == (2, unique - 2)
    assert cap.caption_records(records, tmp_path, cache_dir, progress=False) == out
    assert (cap.last_stats.cached, cap.last_stats.computed) == (unique, 0)


@pytest.mark.parametrize("backend", ["tags", "transformers", "openai"], indirect=True)
def test_caption_images_matches_files(backend: Setup, tmp_path: Path) -> None:
    spec, options, _ = backend  # (metadata captions come from records, not pixels)
    images = noise_images(3)
    cap = create_captioner(spec, batch_size=2, **options)
    from_files = cap.caption_files(write_images(tmp_path, images), progress=False)
    assert cap.caption_images(images, progress=False) == from_files

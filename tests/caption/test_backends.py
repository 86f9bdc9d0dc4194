"""What each backend adds to the contract: prompts, requests, fallbacks, names and errors."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import pytest
from PIL import Image

from atlantis.caption.openai_backend import DEFAULT_PROMPT, image_data_url
from atlantis.caption.registry import create_captioner, list_captioners
from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError, MissingDependencyError

from .conftest import API_KEY, API_KEY_ENV, FakeVisionAPI, noise_images

# ---------------------------------------------------------------- transformers


def test_transformers_prompt_is_a_caption_prefix(tiny_blip: Path, offline: None) -> None:
    plain = create_captioner(f"transformers:{tiny_blip}", local_files_only=True,
                             max_new_tokens=4)  # fmt: skip
    prefixed = create_captioner(f"transformers:{tiny_blip}", local_files_only=True,
                                max_new_tokens=4, prompt="a photo of")  # fmt: skip
    images = noise_images(2)
    assert all(c.startswith("a photo of ") for c in prefixed.caption_images(images, False))
    assert plain.caption_images(images, False) != prefixed.caption_images(images, False)
    assert '"prompt": "a photo of"' in prefixed.key and "dir:" in prefixed.key


def test_transformers_errors(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="cannot load transformers folder"):
        create_captioner(f"transformers:{tmp_path}", local_files_only=True).load()
    with pytest.raises(ConfigError, match="torch_dtype"):
        create_captioner("transformers:x", torch_dtype="float8")
    with pytest.raises(ConfigError, match="num_beams"):
        create_captioner("transformers:x", num_beams=0)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"atlantis-augment\[hf\]"):
        create_captioner("transformers:x")


# ---------------------------------------------------------------- openai


def test_openai_request_carries_image_prompt_and_key(
    vision_api: FakeVisionAPI, api_key: str
) -> None:
    cap = create_captioner("openai:test-vlm", base_url=vision_api.base_url,
                           api_key_env=API_KEY_ENV, max_side=32)  # fmt: skip
    vision_api.requests.clear()
    wide = Image.new("RGB", (90, 30), (10, 200, 30))
    [caption] = cap.caption_images([wide], progress=False)
    assert caption == "a 32x11 picture, colour 10 200 30"  # downscaled, stripped, one line
    [request] = vision_api.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "test-vlm" and body["temperature"] == 0.0
    text, image = body["messages"][0]["content"]
    assert text == {"type": "text", "text": DEFAULT_PROMPT}
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    # The key is read from the environment at request time and never stored or shown.
    assert API_KEY not in cap.key and API_KEY not in repr(cap)
    assert API_KEY not in repr(vars(cap)) and API_KEY not in repr(vars(cap.client))


def test_openai_retries_a_transient_failure(
    vision_api: FakeVisionAPI, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("atlantis.llm.openai_backend._sleep", lambda s: None)
    cap = create_captioner("openai:test-vlm", base_url=vision_api.base_url,
                           api_key_env=API_KEY_ENV, prompt="Name the colour.")  # fmt: skip
    vision_api.requests.clear()
    vision_api.fail_next = 1
    assert cap.caption_images([Image.new("RGB", (8, 8), "red")], progress=False) == [
        "a 8x8 picture, colour 255 0 0"
    ]
    assert len(vision_api.requests) == 2
    assert vision_api.requests[1]["body"]["messages"][0]["content"][0]["text"] == "Name the colour."


def test_image_data_url_never_upscales() -> None:
    url = image_data_url(Image.new("RGBA", (20, 10)), max_side=512)
    png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert png.size == (20, 10) and png.mode == "RGB"
    assert png.getpixel((3, 3)) == (255, 255, 255)  # transparent black, sent as on white


# ---------------------------------------------------------------- metadata


def test_metadata_uses_dataset_captions_and_counts_empty(tmp_path: Path) -> None:
    records = [
        ImageRecord(id="a", path="a.png", label="x", captions=["  a red\nbus ", "other"]),
        ImageRecord(id="b", path="b.png", label="x", captions=["", " "]),
        ImageRecord(id="c", path="c.png", label="y"),
    ]
    cap = create_captioner("metadata")
    # No image is read: the files do not even exist.
    assert cap.caption_records(records, tmp_path, tmp_path / "cache", progress=False) == [
        "a red bus", "", ""
    ]  # fmt: skip
    assert cap.last_stats.empty == 2 and cap.last_stats.computed == 0
    assert cap.needs_images is False and cap.is_model is False and cap.key == "metadata v1"


def test_metadata_fallback_options_and_errors() -> None:
    cap = create_captioner("metadata", fallback="tags", fallback_options={"top_k": 2})
    assert cap.key.startswith("metadata v1 fallback=(tags v1") and "top_k=2" in cap.key
    with pytest.raises(ConfigError, match="own fallback"):
        create_captioner("metadata", fallback="metadata")
    with pytest.raises(ConfigError, match="without a fallback"):
        create_captioner("metadata", fallback_options={"top_k": 2})
    with pytest.raises(ConfigError, match="reads captions from the records"):
        create_captioner("metadata").caption_images(noise_images(1), progress=False)


# ---------------------------------------------------------------- registry


def test_registry_names_and_errors() -> None:
    names = list_captioners()
    assert set(names) == {"metadata", "tags", "transformers:<model>", "openai:<model>"}
    with pytest.raises(ConfigError, match="valid names: metadata, openai, tags, transformers"):
        create_captioner("blip")
    with pytest.raises(ConfigError, match="needs a model"):
        create_captioner("openai")
    with pytest.raises(ConfigError, match="takes no ':<model>'"):
        create_captioner("tags:big")
    with pytest.raises(ConfigError, match="unknown option for captioner 'tags'"):
        create_captioner("tags", prompt="a photo of")
    with pytest.raises(ConfigError, match="batch_size"):
        create_captioner("tags", batch_size=0)

"""The offline ``tags`` captioner: real packaged weights, real emoji, honest sentences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from atlantis.caption.registry import create_captioner
from atlantis.caption.tags import (
    TagsCaptioner,
    imagenet_labels,
    tags_sentence,
    with_article,
)
from atlantis.errors import ConfigError

#: Google Noto emoji file -> a word its tags caption must contain.
EMOJI_EXPECTED = {
    "2602-fe0f.png": "umbrella",  # umbrella
    "1f691.png": "ambulance",  # ambulance
    "1fad6.png": "teapot",  # teapot
    "1f3bb.png": "violin",  # violin
    "1f3b8.png": "guitar",  # guitar
}


@pytest.fixture(scope="module")
def tagger() -> Iterator[TagsCaptioner]:
    yield create_captioner("tags", batch_size=8).load()  # type: ignore[misc]


@pytest.fixture(scope="module")
def emoji_dir() -> Path:
    from atlantis.data.emoji import fetch_emoji

    try:
        root = fetch_emoji()
    except Exception as exc:  # no npm / no network and not fetched before
        pytest.skip(f"emoji dataset unavailable: {exc}")
    return root / "images" / "google"


def test_imagenet_labels_are_the_first_lemmas() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[879] == "umbrella" and labels[999] == "toilet tissue"
    assert all(label and "_" not in label and "," not in label for label in labels)


@pytest.mark.parametrize(
    ("noun", "expected"),
    [("umbrella", "an umbrella"), ("unicycle", "a unicycle"), ("European gallinule",
     "a European gallinule"), ("hourglass", "an hourglass"), ("iPod", "an iPod"),
     ("tench", "a tench"), ("binoculars", "binoculars"), ("Egyptian cat", "an Egyptian cat")],
)  # fmt: skip
def test_articles(noun: str, expected: str) -> None:
    assert with_article(noun) == expected


def test_sentence_shapes() -> None:
    assert tags_sentence(["umbrella", "parasol", "parachute"]) == (
        "a picture of an umbrella, possibly a parasol or a parachute"
    )
    assert tags_sentence(["violin", "cello"]) == "a picture of a violin, possibly a cello"
    assert tags_sentence(["ambulance"]) == "a picture of an ambulance"


def test_emoji_captions_name_the_object(tagger: TagsCaptioner, emoji_dir: Path) -> None:
    paths = [emoji_dir / name for name in EMOJI_EXPECTED]
    captions = tagger.caption_files(paths, progress=False)
    for caption, word in zip(captions, EMOJI_EXPECTED.values(), strict=True):
        assert caption.startswith("a picture of ")
        assert word in caption, caption
    assert tagger.caption_files(paths, progress=False) == captions  # deterministic


def test_synthetic_images_and_options(tagger: TagsCaptioner) -> None:
    # A drawn shape and flat colours: still a sentence, at most top_k labels, no duplicates.
    disc = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(disc).ellipse((16, 16, 80, 80), fill="orange")
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8))
    images = [disc, Image.new("RGB", (50, 80), (30, 90, 200)), noise]
    captions = tagger.caption_images(images, progress=False)
    for caption in captions:
        assert caption.startswith("a picture of ")
        assert caption.count(",") <= 1 and caption.count(" or ") <= 1
    one = create_captioner("tags", top_k=1)
    assert all("possibly" not in c for c in one.caption_images(images, progress=False))
    # min_prob close to 1 keeps only the best guess: that is the top-1 caption.
    strict = create_captioner("tags", min_prob=0.999)
    strict._net, strict._transform, strict._loaded = tagger._net, tagger._transform, True
    assert strict.caption_images(images, progress=False) == one.caption_images(
        images, progress=False
    )


def test_tags_is_honest_about_being_a_classifier(tagger: TagsCaptioner) -> None:
    assert tagger.is_model is False and tagger.needs_images is True
    assert "efficientnet-lite0" in tagger.key and "weights=" in tagger.key
    with pytest.raises(ConfigError, match="top_k"):
        create_captioner("tags", top_k=0)
    with pytest.raises(ConfigError, match="min_prob"):
        create_captioner("tags", min_prob=1.5)

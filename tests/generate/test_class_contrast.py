"""Retrieval's class contrast: a pool image that matches a request but matches another planned
class's descriptions better is ranked down (a fake bag-of-words text encoder, hand-made pool)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.generate.base import ItemSpec
from atlantis.generate.reference_score import class_contrast, class_prototypes
from atlantis.generate.retrieve_source import RetrieveSource

VOCAB = ["hot", "tea", "soup", "cup", "bowl", "spoon"]


def bag_of_words(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), len(VOCAB)), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.split():
            if word in VOCAB:
                out[i, VOCAB.index(word)] += 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)


def test_contrast_is_own_prototype_minus_the_best_other() -> None:
    sims = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.3]])
    assert class_contrast(sims, 0) == pytest.approx([0.4, -0.7])
    assert class_contrast(sims, 2) == pytest.approx([-0.4, -0.5])
    protos = class_prototypes(bag_of_words, [["tea cup", "hot cup"], ["soup bowl"]])
    assert protos.shape == (2, len(VOCAB))
    assert np.linalg.norm(protos, axis=1) == pytest.approx([1.0, 1.0])
    assert protos[0, VOCAB.index("cup")] > protos[0, VOCAB.index("tea")] > 0
    assert protos[1, VOCAB.index("cup")] == 0


# Pool: one image of each class, plus a distractor. "hot soup" shares "hot" with the drink
# request "hot cup", the drink image ("tea") shares nothing with it: by text alone the soup
# wins; the drink class's descriptions (tea, cup) match "tea" better than the food class's.
POOL = {"soup.png": "hot soup", "tea.png": "tea", "spoon.png": "spoon"}


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from atlantis.insight import minilm

    monkeypatch.setattr(minilm, "load_minilm", lambda: bag_of_words)
    folder = tmp_path / "pool"
    folder.mkdir()
    for i, file in enumerate(POOL):
        Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(folder / file)
    rows = [json.dumps({"file": f, "caption": c}) for f, c in POOL.items()]
    (folder / "captions.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def plan() -> list[ItemSpec]:
    texts = [("drink", "hot cup"), ("drink", "tea cup"), ("food", "soup bowl")]
    return [ItemSpec(id=f"i{i}", class_name=c, description=t, seed=i)
            for i, (c, t) in enumerate(texts)]  # fmt: skip


def picks(source: RetrieveSource, items: list[ItemSpec], prepare: bool = True) -> list[str]:
    if prepare:
        source.prepare(items)
    return [r.params["pool_file"] for r in source.make(items[:1])]


def test_the_contrast_picks_the_requested_class_text_alone_does_not(
    pool: Path, tmp_path: Path
) -> None:
    def src(**kw) -> RetrieveSource:
        return RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"),
                              cache_dir=tmp_path / f"cache{len(kw)}", **kw)  # fmt: skip

    assert picks(src(class_contrast=0.0), plan()) == ["soup.png"]  # text alone
    with_contrast = src()
    assert picks(with_contrast, plan()) == ["tea.png"]
    made = with_contrast.make(plan()[2:])  # the next call: the food item keeps the soup
    assert made[0].params["pool_file"] == "soup.png"
    assert made[0].params["contrast_score"] > 0
    # without prepare() the contrast only knows the classes of the call: one class here
    assert picks(src(text_weight=1.0), plan()[:1], prepare=False) == ["soup.png"]


def test_contrast_weight_is_in_the_identity_and_checked(pool: Path) -> None:
    a = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    b = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"),
                       class_contrast=0.0)  # fmt: skip
    assert a.identity != b.identity
    from atlantis.errors import ConfigError

    with pytest.raises(ConfigError, match="class_contrast must be a number >= 0"):
        RetrieveSource(pool=str(pool), class_contrast=-1)

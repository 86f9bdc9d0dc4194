"""The filter stage end to end on a tiny run: real EfficientNet-Lite0 features at 64 px.

The run is built once per module: an imagefolder of smooth colour patterns (classes a_red,
b_blue train; c_green, d_yellow test), and a fake ``generate/<arm>`` stage with fresh
patterns of the train classes plus an obvious outlier (noise), an exact copy of another
synthetic image, a copy of a real image, and images of a new class with no real image.
Embeddings are cached in the run, so only the first test pays for the model.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import atlantis.cli.filter_cmd  # noqa: F401  (registers `atlantis filter` until main imports it)
from atlantis.cli.main import app
from atlantis.config import AtlantisConfig, DataConfig, EmbedConfig, save_config
from atlantis.data.ingest import ingest, load_ingested
from atlantis.data.records import ImageRecord, Provenance, read_records, write_records
from atlantis.embed.stage import build_embedder
from atlantis.errors import StageError
from atlantis.filtering.config import FilterConfig
from atlantis.filtering.stage import filter_arm, load_filter_stats, load_kept
from atlantis.store.atomic import atomic_save_npy, atomic_write_text
from atlantis.store.run import Run

SIZE = 48
COLORS = {"a_red": (210, 40, 40), "b_blue": (40, 60, 210), "c_green": (40, 180, 60),
          "d_yellow": (220, 200, 40), "e_purple": (150, 40, 170)}  # fmt: skip
EMBED = EmbedConfig(embedder="efficientnet-lite0", image_size=64)
STRICT_DEDUP = 0.9999  # distinct patterns reach 0.999 here; copies are at 1.0


def pattern(color: tuple[int, int, int], seed: int) -> Image.Image:
    """A smooth sinusoidal shading of one colour: same class, different picture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    phase = xx * rng.uniform(2, 3) + yy * rng.uniform(1, 2) + rng.uniform(0, 1)
    shade = 0.65 + 0.35 * np.sin(phase)
    return Image.fromarray(np.clip(np.array(color) * shade[..., None], 0, 255).astype("uint8"))


def noise(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype="uint8"))


def fake_generate(run: Run, arm: str, images: dict[str, tuple[str, Image.Image | Path]]) -> None:
    """A finished ``generate/<arm>`` stage: id -> (label, image or file to copy)."""
    with run.stage(f"generate/{arm}", {"fake": arm}) as ctx:
        records = []
        for n, (rid, (label, img)) in enumerate(images.items()):
            rel = f"generate/{arm}/images/{rid}.png"
            (run.root / rel).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(img, Path):
                shutil.copyfile(img, run.root / rel)
            else:
                img.save(run.root / rel)
            records.append(ImageRecord(
                id=rid, path=rel, label=label, split="train", source="synthetic",
                domains=["flying"] if n % 2 else ["sitting"],
                provenance=Provenance(model="fake", prompt=f"a photo of {label}", seed=n),
                meta={"plan_id": f"p{n // 4}", "arm": arm, "is_new_class": label == "e_purple"},
            ))  # fmt: skip
        write_records(ctx.add_output(ctx.dir / "records.jsonl"), records)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("filter")
    for c, color in list(COLORS.items())[:4]:
        for i in range(6):
            (tmp / "data" / c).mkdir(parents=True, exist_ok=True)
            pattern(color, i).save(tmp / "data" / c / f"{i}.png")
    r = Run(tmp / "run")
    ingest(r, DataConfig(format="imagefolder", root=str(tmp / "data"), val_fraction=0.0))
    save_config(AtlantisConfig(embed=EMBED), r.config_path)
    a0 = pattern(COLORS["a_red"], 100)
    images: dict[str, tuple[str, Image.Image | Path]] = {
        **{f"a{i}": ("a_red", pattern(COLORS["a_red"], 100 + i)) for i in range(4)},
        "a4-noise": ("a_red", noise(1)),
        "a5-copy": ("a_red", a0),  # the same pixels as a0
        "a6-real": ("a_red", tmp / "data" / "a_red" / "3.png"),
        **{f"b{i}": ("b_blue", pattern(COLORS["b_blue"], 100 + i)) for i in range(3)},
        **{f"e{i}": ("e_purple", pattern(COLORS["e_purple"], i)) for i in range(2)},
    }
    fake_generate(r, "targeted", images)
    fake_generate(r, "naive", images)
    return r


def by_id(records: list[ImageRecord]) -> dict[str, dict]:
    return {rec.id: rec.meta["filter"] for rec in records}


def test_end_to_end(run: Run) -> None:
    m = filter_arm(run, FilterConfig(rule="radius", delta=2.0, dedup_threshold=STRICT_DEDUP), "targeted",
                   EMBED, progress=False)  # fmt: skip
    folder = run.stage_dir("filter/targeted")
    assert m.status == "done" and m.stage == "filter/targeted"
    assert {"kept.jsonl", "removed.jsonl", "stats.json"} <= set(m.outputs)
    kept, removed = by_id(load_kept(run, "targeted")), by_id(read_records(folder / "removed.jsonl"))
    assert set(kept) == {"a0", "a1", "a2", "a3", "b0", "b1", "b2", "e0", "e1"}
    assert removed["a4-noise"]["reason"] == "outlier" and removed["a4-noise"]["ratio"] > 2.0
    assert removed["a5-copy"]["reason"] == "near_duplicate"
    assert removed["a5-copy"]["duplicate_of"] == "a0"
    assert removed["a5-copy"]["similarity"] == pytest.approx(1.0, abs=1e-5)
    real_a3 = next(r for r in load_ingested(run)[0] if r.path == "a_red/3.png")
    assert removed["a6-real"]["reason"] == "near_duplicate_real"
    assert removed["a6-real"]["duplicate_of"] == real_a3.id
    assert kept["e0"]["reason"] == "new_class" and kept["e0"]["distance"] is None
    assert kept["a0"]["reason"] == "inlier" and kept["a0"]["ratio"] <= 2.0
    assert kept["a0"]["delta"] == 2.0 and kept["a0"]["class_radius"] > 0

    stats = json.loads((folder / "stats.json").read_text())
    assert stats["totals"] | {"removed_by_reason": None, "removed_by_rule": None} == {
        "synthetic": 12, "kept": 9, "removed": 3, "kept_fraction": 0.75,
        "removed_fraction": 0.25, "removed_by_reason": None, "removed_by_rule": None}  # fmt: skip
    assert stats["totals"]["removed_by_rule"] == {"diversity": 2, "radius": 1}
    assert stats["rule"] == "radius" and stats["rules"] == ["radius"]
    assert stats["rule_options"] == {"radius_prior": 4.0, "radius_pool_min": 5}
    assert removed["a4-noise"]["removed_by"] == ["radius"]
    assert removed["a5-copy"]["removed_by"] == ["diversity"]
    assert kept["a0"]["removed_by"] == [] and kept["a0"]["verdicts"] == {"radius": "inlier"}
    assert stats["totals"]["removed_by_reason"] == {
        "near_duplicate": 1,
        "near_duplicate_real": 1,
        "outlier": 1,
    }
    rows = {row["class"]: row for row in stats["per_class"]}
    assert rows["a_red"]["n_real"] == 6 and rows["a_red"]["kept_fraction"] == 4 / 7
    assert rows["e_purple"]["new_class"] and rows["e_purple"]["n_real"] == 0
    assert {d["domain"] for d in stats["per_domain"]} == {"flying", "sitting"}
    assert stats["real_embeddings"] == "cache" and stats["delta"] == 2.0
    for row in rows.values():
        with Image.open(folder / row["grid"]) as grid:
            assert grid.size[0] > grid.size[1] > 0
    assert m.counts["kept"] == 9 and m.counts["outlier"] == 1 and m.counts["real"] == 12


def test_up_to_date_run_is_skipped(run: Run) -> None:
    cfg = FilterConfig(rule="radius", delta=2.0, dedup_threshold=STRICT_DEDUP)
    first = filter_arm(run, cfg, "targeted", EMBED, progress=False)
    again = filter_arm(
        run, cfg.model_copy(update={"batch_size": 3}), "targeted", EMBED, progress=False
    )  # fmt: skip  (runtime keys do not count)
    assert again.started_at == first.started_at


def test_delta_sweep(run: Run) -> None:
    cfg = FilterConfig(rule="radius", delta=[2.0, 1.0, math.inf], dedup_threshold=STRICT_DEDUP)
    m = filter_arm(run, cfg, "naive", EMBED, progress=False)
    folder = run.stage_dir("filter/naive")
    assert m.info["deltas"] == ["delta-1", "delta-2", "delta-inf"] and m.info["sweep"]
    kept = {d: {r.id for r in load_kept(run, "naive", d)} for d in (1.0, 2.0, math.inf)}
    assert kept[1.0] <= kept[2.0] <= kept[math.inf]
    assert "a4-noise" in kept[math.inf] and "a4-noise" not in kept[2.0]
    assert m.counts["kept_delta-inf"] == 10  # everything but the two copies
    sweep = json.loads((folder / "stats.json").read_text())["sweep"]
    assert [s["folder"] for s in sweep] == ["delta-1", "delta-2", "delta-inf"]
    assert sweep[-1]["delta"] == "inf"
    assert load_filter_stats(run, "naive", math.inf)["delta"] == "inf"
    assert (folder / "delta-1" / "grids").is_dir() and not (folder / "kept.jsonl").exists()
    with pytest.raises(StageError, match=r"delta sweep \(delta-1, delta-2, delta-inf\)"):
        load_kept(run, "naive")
    # Back to a single delta: the sweep's folders go away.
    filter_arm(run, FilterConfig(rule="radius", delta=1.5, dedup_threshold=STRICT_DEDUP), "naive", EMBED,
               progress=False)  # fmt: skip
    assert not list(folder.glob("delta-*")) and (folder / "kept.jsonl").exists()
    with pytest.raises(StageError, match=r"filtered with delta-1\.5, not delta-2"):
        load_kept(run, "naive", 2.0)


def test_warns_when_near_duplicates_dominate(run: Run) -> None:
    # Distinct patterns of one colour reach cosine 0.98-0.999 in this feature space.
    with pytest.warns(RuntimeWarning, match=r"removed \d+ of the \d+ images that passed ORDC"):
        filter_arm(run, FilterConfig(rule="radius", delta=2.0, dedup_threshold=0.95), "naive", EMBED,
                   progress=False)  # fmt: skip


def test_new_classes_can_be_removed(run: Run) -> None:
    cfg = FilterConfig(rule="radius", delta=math.inf, keep_new_classes=False, dedup_threshold=None)
    filter_arm(run, cfg, "naive", EMBED, progress=False)
    removed = by_id(read_records(run.stage_dir("filter/naive") / "removed.jsonl"))
    assert set(removed) == {"e0", "e1"} and removed["e0"]["reason"] == "new_class"


def test_reuses_the_embed_stage_of_the_same_embedder(run: Run) -> None:
    """With zero real vectors every radius is 0 -> fallback inf: the outlier is kept."""
    records, _ = load_ingested(run)
    key = build_embedder(EMBED).key
    name = "embed/efficientnet-lite0"
    for info_key, expected in ((key + " other", "cache"), (key, name)):
        with run.stage(name, {"fake": info_key}) as ctx:
            atomic_save_npy(ctx.add_output(ctx.dir / "embeddings.npy"),
                            np.zeros((len(records), 1280), np.float32))  # fmt: skip
            atomic_write_text(ctx.add_output(ctx.dir / "ids.json"),
                              json.dumps([r.id for r in records]))  # fmt: skip
            ctx.info["embedder_key"] = info_key
        warns = pytest.warns(RuntimeWarning, match="zero radius")
        with warns if expected == name else contextlib.nullcontext():
            m = filter_arm(run, FilterConfig(rule="radius", delta=1.0, dedup_threshold=None), "naive", EMBED,
                           force=True, progress=False)  # fmt: skip
        assert m.info["real_embeddings"] == expected
    assert "a4-noise" in {r.id for r in load_kept(run, "naive")}
    shutil.rmtree(run.stage_dir(name))


def test_empty_generation_and_missing_stage(run: Run) -> None:
    fake_generate(run, "empty", {})
    m = filter_arm(run, FilterConfig(), "empty", EMBED, progress=False)
    assert m.counts["kept"] == 0 and load_kept(run, "empty") == []
    assert load_filter_stats(run, "empty", 1.5)["totals"]["kept_fraction"] is None
    with pytest.raises(StageError, match="generate/nothing' has not run"):
        filter_arm(run, FilterConfig(), "nothing", EMBED)


def test_cli(run: Run) -> None:
    cli = CliRunner()
    args = ["filter", str(run.root), "--arm", "targeted", "--set", "filter.dedup_threshold=0.9999",
            "--set", "filter.rule=radius"]  # fmt: skip
    res = cli.invoke(app, [*args, "--delta", "2"])
    assert res.exit_code == 0, res.output
    assert "kept 9 of 12" in res.output and "a_red" in res.output and "(new)" in res.output
    res = cli.invoke(app, [*args, "--delta", "1", "--delta", "inf"])
    assert res.exit_code == 0, res.output
    assert "delta 1.0" in res.output and "delta inf" in res.output
    assert {r.id for r in load_kept(run, "targeted", math.inf)} >= {"a4-noise"}
    res = cli.invoke(app, [*args, "--delta", "0"])
    assert res.exit_code == 2 and "delta must be > 0; use inf for no filtering" in res.output
    res = cli.invoke(app, ["filter", str(run.root), "--arm", "nothing"])
    assert res.exit_code == 2 and "atlantis generate" in res.output


def test_both_rules_write_verdicts_reasons_and_per_rule_counts(run: Run) -> None:
    """A blue pattern labelled a_red is the wrong class: the consistency rule removes it and
    names b_blue; the noise image is the radius rule's. Every removed record says who."""
    fake_generate(run, "mixed", {
        **{f"a{i}": ("a_red", pattern(COLORS["a_red"], 200 + i)) for i in range(3)},
        "a-blue": ("a_red", pattern(COLORS["b_blue"], 300)),
        "a-noise": ("a_red", noise(2)),
        **{f"b{i}": ("b_blue", pattern(COLORS["b_blue"], 200 + i)) for i in range(2)},
        "e0": ("e_purple", pattern(COLORS["e_purple"], 7)),
    })  # fmt: skip
    cfg = FilterConfig(delta=2.0, rule="both", dedup_threshold=None)
    m = filter_arm(run, cfg, "mixed", EMBED, progress=False)
    folder = run.stage_dir("filter/mixed")
    kept, removed = by_id(load_kept(run, "mixed")), by_id(read_records(folder / "removed.jsonl"))
    blue = removed["a-blue"]
    assert "consistency" in blue["removed_by"] and blue["verdicts"]["consistency"] == "inconsistent"
    assert blue["best_other_class"] == "b_blue" and blue["margin"] < 0
    assert "radius" in removed["a-noise"]["removed_by"]
    assert kept["e0"]["verdicts"] == {"radius": "new_class", "consistency": "new_class"}
    assert kept["e0"]["margin"] is None and kept["e0"]["best_other_class"] is None
    for info in kept.values():
        assert info["removed_by"] == [] and info["rule"] == "both"
    for info in removed.values():  # reason: the first rule (in rule order) that removed it
        assert info["removed_by"] and info["reason"] == info["verdicts"][info["removed_by"][0]]
        assert {info["verdicts"][r] for r in info["removed_by"]} <= {"outlier", "inconsistent"}
    stats = json.loads((folder / "stats.json").read_text())
    by_rule = {r: sum(r in i["removed_by"] for i in removed.values()) for r in cfg.rules}
    assert stats["totals"]["removed_by_rule"] == {r: n for r, n in by_rule.items() if n}
    assert sum(stats["totals"]["removed_by_reason"].values()) == len(removed) == m.counts["removed"]
    assert stats["rules"] == ["radius", "consistency"] and stats["rule_options"] == {
        "radius_prior": 4.0, "radius_pool_min": 5, "consistency_metric": "cosine",
        "consistency_vote": "centroid", "consistency_k": 10, "consistency_margin": 0.0}  # fmt: skip
    row = {r["class"]: r for r in stats["per_class"]}["a_red"]
    assert row["removed_by_rule"].get("consistency", 0) >= 1 and row["raw_radius"] > 0

    # Consistency alone: the blue one goes again, and every removal is that rule's.
    alone = FilterConfig(delta=2.0, rule="consistency", dedup_threshold=None)
    filter_arm(run, alone, "mixed", EMBED, progress=False)
    removed = by_id(read_records(folder / "removed.jsonl"))
    assert removed["a-blue"]["reason"] == "inconsistent"
    assert all(i["removed_by"] == ["consistency"] for i in removed.values())
    assert all("distance" in i for i in removed.values())  # the radius geometry, still reported


def test_rule_options_change_the_config_hash(run: Run) -> None:
    base = FilterConfig(delta=2.0, rule="consistency", dedup_threshold=None)
    first = filter_arm(run, base, "naive", EMBED, progress=False)
    assert filter_arm(run, base, "naive", EMBED, progress=False).started_at == first.started_at
    seen = {first.config_hash}
    for update in ({"consistency_margin": 0.1}, {"consistency_vote": "knn"},
                   {"consistency_k": 3, "consistency_vote": "knn"}, {"rule": "both"},
                   {"rule": "both", "radius_prior": 0.0}, {"rule": "both", "radius_pool_min": 2}):  # fmt: skip
        cfg = base.model_copy(update=update)
        m = filter_arm(run, cfg, "naive", EMBED, progress=False)
        assert m.config_hash not in seen, update
        seen.add(m.config_hash)
        assert load_filter_stats(run, "naive")["rule_options"].items() >= {
            k: v for k, v in update.items() if k != "rule"}.items()  # fmt: skip


def test_sweep_with_both_rules(run: Run) -> None:
    cfg = FilterConfig(delta=[1.0, math.inf], rule="both", dedup_threshold=None)
    filter_arm(run, cfg, "naive", EMBED, progress=False)
    inf = by_id(load_kept(run, "naive", math.inf)) | by_id(
        read_records(run.stage_dir("filter/naive") / "delta-inf" / "removed.jsonl"))  # fmt: skip
    one = by_id(load_kept(run, "naive", 1.0)) | by_id(
        read_records(run.stage_dir("filter/naive") / "delta-1" / "removed.jsonl"))  # fmt: skip
    assert all(i["verdicts"]["radius"] in ("inlier", "new_class") for i in inf.values())
    # The consistency rule does not depend on delta: the same verdicts in every folder.
    assert {k: i["verdicts"]["consistency"] for k, i in inf.items()} == {
        k: i["verdicts"]["consistency"] for k, i in one.items()}  # fmt: skip
    assert {k for k, i in inf.items() if i["removed_by"]} == {
        k for k, i in inf.items() if i["verdicts"]["consistency"] == "inconsistent"}  # fmt: skip


def test_the_normalisation_choice_is_recorded(run: Run) -> None:
    folder = run.stage_dir("filter/naive")
    for setting in ("auto", False, True):
        cfg = FilterConfig(rule="both", delta=2.0, dedup_threshold=None, normalize=setting)
        m = filter_arm(run, cfg, "naive", EMBED, progress=False)
        # auto: EfficientNet's pooled features are a raw backbone's, not unit length.
        expected = True if setting == "auto" else setting
        stats = load_filter_stats(run, "naive")
        assert stats["normalized"] is expected and stats["normalize_setting"] == setting
        assert m.info["normalized"] is expected
        records = load_kept(run, "naive") + read_records(folder / "removed.jsonl")
        assert records and all(r.meta["filter"]["normalized"] is expected for r in records)

"""Scenarios: class imbalance, domain scarcity and few-shot, alone and at ingest."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from atlantis.config import DataConfig, load_config, save_config
from atlantis.data.ingest import ingest, load_ingested, load_scenario
from atlantis.data.readers import read_dataset
from atlantis.data.records import ImageRecord, read_records, write_records
from atlantis.data.scenarios import ScenarioConfig, apply_scenario
from atlantis.data.splits import assign_splits
from atlantis.errors import ConfigError, DataError
from atlantis.store.run import Run, config_hash

# -- a hand-checkable record list ----------------------------------------------------------
# train: A 5 images (3 sky, 2 water), B 2 (both water), C 1 (sky), D 4 (sky); val: V 3;
# test: T 4 (2 water). Ids are "<class><k>".
TRAIN = {"A": ["sky"] * 3 + ["water"] * 2, "B": ["water"] * 2, "C": ["sky"], "D": ["sky"] * 4}
HELD = {"V": ("val", ["sky"] * 3), "T": ("test", ["water", "water", "sky", "sky"])}


def records(with_domains: bool = True) -> list[ImageRecord]:
    out = []
    groups = [(c, "train", d) for c, d in TRAIN.items()] + [(c, s, d) for c, (s, d) in HELD.items()]
    for label, split, doms in groups:
        for k, dom in enumerate(doms):
            out.append(ImageRecord(id=f"{label}{k}", path=f"{label}/{k}.png", label=label,
                                   split=split, domains=[dom] if with_domains else []))  # fmt: skip
    return out


def ids(recs: list[ImageRecord]) -> set[str]:
    return {r.id for r in recs}


def held(recs: list[ImageRecord]) -> list[str]:
    return [r.model_dump_json() for r in recs if r.split != "train"]


def kept_per_class(recs: list[ImageRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in recs:
        if r.split == "train":
            out[r.label] = out.get(r.label, 0) + 1
    return out


# -- each kind -----------------------------------------------------------------------------
def test_none_keeps_everything() -> None:
    recs = records()
    res = apply_scenario(recs, ScenarioConfig())
    assert res.kept == recs and res.dropped == []


def test_class_imbalance_named_classes(caplog: pytest.LogCaptureFixture) -> None:
    recs = records()
    cfg = ScenarioConfig(kind="class_imbalance", classes=["C", "A"])
    with caplog.at_level(logging.WARNING):
        res = apply_scenario(recs, cfg)
    assert kept_per_class(res.kept) == {"A": 2, "B": 2, "C": 1, "D": 4}
    assert len(res.dropped) == 3 and {r.label for r in res.dropped} == {"A"}
    assert ids(res.kept) | ids(res.dropped) == ids(recs) and not ids(res.kept) & ids(res.dropped)
    assert [r.id for r in res.kept] == [r.id for r in recs if r.id in ids(res.kept)]  # order kept
    s = res.summary
    assert s["classes"] == ["A", "C"]  # dataset order, not the listed order
    assert s["per_class"]["A"]["dropped"] == 3 and s["per_class"]["A"]["kept"] == 2
    assert s["per_class"]["C"] == {**s["per_class"]["C"], "train_images": 1, "dropped": 0}
    assert s["short_classes"] == ["C"] and s["single_image_classes"] == ["C"]
    assert (s["train_images_before"], s["train_images_after"], s["dropped_images"]) == (12, 9, 3)
    assert "fewer than 2" in caplog.text and "no positive pair" in caplog.text
    assert held(res.kept) == held(recs)


def test_class_imbalance_kappa_classes_by_seed() -> None:
    recs = records()
    chosen = set()
    for seed in range(12):
        res = apply_scenario(recs, ScenarioConfig(kind="class_imbalance", n_classes=2, seed=seed))
        assert len(res.summary["classes"]) == 2
        assert set(res.summary["classes"]) <= set(TRAIN)
        chosen.add(tuple(res.summary["classes"]))
        again = apply_scenario(recs, ScenarioConfig(kind="class_imbalance", n_classes=2, seed=seed))
        assert again.summary == res.summary
    assert len(chosen) > 1  # the seed matters


def test_few_shot_cuts_every_training_class() -> None:
    recs = records()
    res = apply_scenario(recs, ScenarioConfig(kind="few_shot", keep=1))
    assert kept_per_class(res.kept) == {"A": 1, "B": 1, "C": 1, "D": 1}
    assert res.summary["classes"] == ["A", "B", "C", "D"]
    assert len(res.dropped) == 8 and held(res.kept) == held(recs)


def test_domain_scarcity_drops_the_domain_but_never_empties_a_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recs = records()
    with caplog.at_level(logging.WARNING):
        res = apply_scenario(recs, ScenarioConfig(kind="domain_scarcity", domains=["water"]))
    # A loses its 2 water images; B (all water) keeps one so the class is not emptied.
    assert ids(res.dropped) == {"A3", "A4"} | ({"B0", "B1"} - ids(res.kept))
    assert kept_per_class(res.kept) == {"A": 3, "B": 1, "C": 1, "D": 4}
    assert all(r.split == "train" and "water" in r.domains for r in res.dropped)
    assert {"T0", "T1"} <= ids(res.kept)  # test water images stay
    s = res.summary
    assert s["domains"] == ["water"] and s["keep"] == 0
    assert s["kept_to_avoid_empty_class"] == ["B"]
    assert s["per_class"]["A"]["dropped"] == 2 and s["per_class"]["D"]["dropped"] == 0
    assert "not emptied" in caplog.text
    assert held(res.kept) == held(recs)


def test_domain_scarcity_keep_classes_and_fraction() -> None:
    recs = records()
    res = apply_scenario(recs, ScenarioConfig(kind="domain_scarcity", domains=["water"], keep=1))
    assert kept_per_class(res.kept) == {"A": 4, "B": 1, "C": 1, "D": 4}
    assert res.summary["kept_to_avoid_empty_class"] == []
    only_b = ScenarioConfig(kind="domain_scarcity", domains=["water"], classes=["B"])
    res = apply_scenario(recs, only_b)
    assert kept_per_class(res.kept)["A"] == 5 and res.summary["classes"] == ["B"]
    half = ScenarioConfig(kind="domain_scarcity", domains=["water"], fraction=0.5, seed=3)
    assert len(apply_scenario(recs, half).summary["classes"]) == 2


def test_partly_unlabelled_domains_are_kept_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recs = records()
    recs[0].domains = []
    with caplog.at_level(logging.WARNING):
        res = apply_scenario(recs, ScenarioConfig(kind="domain_scarcity", domains=["sky"]))
    assert "A0" in ids(res.kept) and "1 training image(s) have no domain label" in caplog.text


# -- reproducibility -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "cfg",
    [
        ScenarioConfig(kind="class_imbalance", n_classes=3, seed=5),
        ScenarioConfig(kind="few_shot", keep=2, seed=1),
        ScenarioConfig(kind="domain_scarcity", domains=["sky"], keep=1, fraction=0.75),
    ],
    ids=["class_imbalance", "few_shot", "domain_scarcity"],
)
def test_reproducible_order_independent_and_test_untouched(cfg: ScenarioConfig) -> None:
    recs = records()
    first = apply_scenario(recs, cfg)
    shuffled = recs[:]
    random.Random(0).shuffle(shuffled)
    second = apply_scenario(shuffled, cfg)
    assert ids(first.kept) == ids(second.kept) and ids(first.dropped) == ids(second.dropped)
    assert first.summary["classes"] == sorted(first.summary["classes"])  # dataset order
    assert first.dropped and all(r.split == "train" for r in first.dropped)
    assert held(first.kept) == held(recs)
    assert [r.model_dump_json() for r in recs] == [r.model_dump_json() for r in records()]


def test_kept_images_are_nested_as_keep_grows() -> None:
    recs = records()
    small = apply_scenario(recs, ScenarioConfig(kind="few_shot", keep=2))
    large = apply_scenario(recs, ScenarioConfig(kind="few_shot", keep=3))
    assert ids(small.kept) < ids(large.kept)


# -- errors --------------------------------------------------------------------------------
def test_unknown_and_held_out_classes_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown class\(es\) \['Z'\].*'A', 'B'"):
        apply_scenario(records(), ScenarioConfig(kind="class_imbalance", classes=["A", "Z"]))
    with pytest.raises(ConfigError, match=r"\['T'\] have no training images"):
        apply_scenario(records(), ScenarioConfig(kind="class_imbalance", classes=["T"]))
    with pytest.raises(ConfigError, match=r"n_classes = 9.*only 4 training classes"):
        apply_scenario(records(), ScenarioConfig(kind="class_imbalance", n_classes=9))


def test_unknown_domain_lists_the_datasets_domains() -> None:
    with pytest.raises(ConfigError, match=r"unknown domain\(s\) \['snow'\].*\['sky', 'water'\]"):
        apply_scenario(records(), ScenarioConfig(kind="domain_scarcity", domains=["snow"]))


def test_domain_scarcity_without_domain_labels() -> None:
    with pytest.raises(DataError, match="use a dataset with domain labels"):
        apply_scenario(records(False), ScenarioConfig(kind="domain_scarcity", domains=["sky"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "class_imbalance"}, "exactly one of 'classes'"),
        ({"kind": "class_imbalance", "classes": ["A"], "n_classes": 1}, "exactly one of"),
        ({"kind": "class_imbalance", "n_classes": 1, "keep": 0}, "at least 1"),
        ({"kind": "domain_scarcity"}, "needs 'domains'"),
        (
            {"kind": "domain_scarcity", "domains": ["x"], "classes": ["A"], "fraction": 0.5},
            "not both",
        ),
        ({"kind": "few_shot"}, "needs 'keep'"),
        ({"kind": "few_shot", "keep": 2, "domains": ["x"]}, r"does not use \['domains'\]"),
        ({"kind": "fewshot"}, "'none', 'class_imbalance', 'domain_scarcity' or 'few_shot'"),
        ({"kind": "few_shot", "keep": 2, "colour": 1}, "Extra inputs"),
        ({"kind": "class_imbalance", "classes": []}, "at least one name"),
        ({"kind": "domain_scarcity", "domains": ["x"], "fraction": 1.5}, "fraction"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScenarioConfig(**kwargs)


def test_none_ignores_the_other_fields() -> None:
    cfg = ScenarioConfig(kind="none", classes=["A"], keep=7)
    assert apply_scenario(records(), cfg).dropped == []


# -- config round trip ---------------------------------------------------------------------
def test_overrides_and_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(
        overrides=[
            "data.scenario.kind=domain_scarcity",
            "data.scenario.domains=[water, 'sky']",
            "data.scenario.classes=A,B",
            "data.scenario.keep=1",
        ]
    )
    sc = cfg.data.scenario
    assert (sc.kind, sc.domains, sc.classes, sc.keep, sc.keep_per_class) == (
        "domain_scarcity", ["water", "sky"], ["A", "B"], 1, 1)  # fmt: skip
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    digits = load_config(overrides=["data.scenario.kind=class_imbalance",
                                    "data.scenario.classes=[1, 2]"])  # fmt: skip
    assert digits.data.scenario.classes == ["1", "2"]
    assert load_config().data.scenario.kind == "none"
    with pytest.raises(ConfigError, match=r"data\.scenario\.n_classes"):
        load_config(overrides=["data.scenario.n_clases=3"])
    with pytest.raises(ConfigError, match=r"'data\.scenario'.*needs 'keep'"):
        load_config(overrides=["data.scenario.kind=few_shot"])


# -- at ingest -----------------------------------------------------------------------------
@pytest.fixture
def manifest_root(tmp_path: Path, make_image) -> Path:
    """4 classes x 4 images, domains sky/sky/water/water; zsl: c0, c1 train, c2, c3 test."""
    root = tmp_path / "data"
    lines = ["path,label,domain"]
    for c in range(4):
        for k in range(4):
            make_image(root / f"c{c}" / f"{k}.png", color=(60 * c, 40 * k, 10))
            lines.append(f"c{c}/{k}.png,c{c},{'sky' if k < 2 else 'water'}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def data_cfg(root: Path, **scenario) -> DataConfig:
    return DataConfig(format="manifest", root=str(root), split="zsl", val_fraction=0.0,
                      scenario=ScenarioConfig(**scenario))  # fmt: skip


def test_ingest_writes_kept_dropped_and_summary(manifest_root: Path, tmp_path: Path) -> None:
    plain, run = Run(tmp_path / "plain"), Run(tmp_path / "run")
    ingest(plain, data_cfg(manifest_root))
    m = ingest(run, data_cfg(manifest_root, kind="domain_scarcity", domains=["water"]))
    recs, desc = load_ingested(run)
    dropped = read_records(run.stage_dir("ingest") / "dropped.jsonl")
    assert {r.id for r in dropped} == {f"c{c}/{k}.png" for c in (0, 1) for k in (2, 3)}
    assert all(r.split == "train" for r in dropped)
    assert not any("water" in r.domains for r in recs if r.split == "train")
    plain_recs, plain_desc = load_ingested(plain)
    assert held(recs) == held(plain_recs) and desc == plain_desc
    assert m.counts["dropped_images"] == 4 and m.counts["train_images"] == 4
    assert m.counts["test_images"] == 8
    assert m.info["scenario"] == {"kind": "domain_scarcity", "classes": 2, "domains": ["water"],
                                  "keep": 0, "dropped_images": 4}  # fmt: skip
    assert set(m.outputs) >= {"records.jsonl", "dropped.jsonl", "scenario.json"}
    summary = load_scenario(run)
    assert summary is not None and summary["dropped_images"] == 4
    assert summary == json.loads((run.stage_dir("ingest") / "scenario.json").read_text())
    assert load_scenario(plain) is None


def test_ingest_without_scenario_is_unchanged(manifest_root: Path, tmp_path: Path) -> None:
    """Same config hash, files and counts as an ingest made before scenarios existed."""
    run = Run(tmp_path / "run")
    cfg = data_cfg(manifest_root)
    m = ingest(run, cfg)
    pre_scenario = {k: v for k, v in cfg.model_dump(mode="json").items() if k != "scenario"}
    assert m.config_hash == config_hash(pre_scenario)
    assert set(m.outputs) == {"records.jsonl", "dataset.json"}
    assert "dropped_images" not in m.counts and "scenario" not in m.info
    expected = tmp_path / "expected.jsonl"
    write_records(expected, assign_splits(read_dataset("manifest", manifest_root), "zsl",
                                          val_fraction=0.0))  # fmt: skip
    assert (run.stage_dir("ingest") / "records.jsonl").read_bytes() == expected.read_bytes()


def test_reingest_follows_the_scenario(manifest_root: Path, tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    few = data_cfg(manifest_root, kind="few_shot", keep=1)
    first = ingest(run, few)
    assert ingest(run, few).finished_at == first.finished_at  # up to date: skipped
    two = ingest(run, data_cfg(manifest_root, kind="few_shot", keep=2))
    assert two.counts["dropped_images"] == 4 and two.config_hash != first.config_hash
    # A bad scenario fails before writing anything: the previous ingest stays intact.
    before = (run.stage_dir("ingest") / "records.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="c3"):
        ingest(run, data_cfg(manifest_root, kind="class_imbalance", classes=["c3"]))
    assert (run.stage_dir("ingest") / "records.jsonl").read_bytes() == before
    off = ingest(run, data_cfg(manifest_root))
    assert off.counts["train_images"] == 8 and load_scenario(run) is None
    assert not (run.stage_dir("ingest") / "dropped.jsonl").exists()
    assert not (run.stage_dir("ingest") / "scenario.json").exists()


def test_cli_ingest_with_scenario_overrides(manifest_root: Path, tmp_path: Path) -> None:
    from atlantis.cli.main import app

    out = tmp_path / "run"
    args = ["ingest", "--format", "manifest", "--root", str(manifest_root), "--out", str(out),
            "--val-fraction", "0", "--set", "data.scenario.kind=class_imbalance",
            "--set", "data.scenario.n_classes=1", "--set", "data.scenario.keep=3"]  # fmt: skip
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    summary = load_scenario(Run(out))
    assert summary is not None and summary["dropped_images"] == 1
    assert load_config(out / "config.yaml").data.scenario.n_classes == 1
    bad = [*args[:-4], "--set", "data.scenario.n_classes=null", "--set",
           "data.scenario.classes=[nope]"]  # fmt: skip
    res = CliRunner().invoke(app, bad)
    assert res.exit_code == 2 and "unknown class(es) ['nope']" in res.output

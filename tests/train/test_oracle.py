"""The ``oracle`` arm: the real training images plus exactly what the scenario withheld.

It is the upper bound of any augmentation, so it must differ from the baseline in nothing
but those records: not in val or test, not in the optimiser steps, not in the seeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from atlantis.config import AtlantisConfig, DataConfig
from atlantis.data.ingest import ingest, load_dropped, load_ingested
from atlantis.errors import ConfigError
from atlantis.pipeline import loop as loop_module
from atlantis.pipeline.loop import check_config, comparison_steps, oracle_problem, train_arm
from atlantis.store.run import Run
from atlantis.train import stage as stage_module
from atlantis.train.stage import split_records, train

from .conftest import tiny_config

#: Two of the six training classes cut to 2 images each (of 6): 8 records withheld.
SCENARIO = {"kind": "class_imbalance", "n_classes": 2, "keep": 2}


@pytest.fixture(scope="module")
def scenario_ingested(tmp_path_factory: pytest.TempPathFactory, dataset_root: Path) -> Path:
    run = Run(tmp_path_factory.mktemp("scenario-run"))
    ingest(run, DataConfig(format="imagefolder", root=str(dataset_root), split="zsl",
                           scenario=SCENARIO))  # fmt: skip
    return run.root


@pytest.fixture
def scenario_run(scenario_ingested: Path, tmp_path: Path) -> Run:
    shutil.copytree(scenario_ingested, tmp_path / "run")
    return Run(tmp_path / "run")


def _ids(records) -> list[str]:
    return [r.id for r in records]


def test_the_oracles_records_equal_kept_plus_dropped_exactly(scenario_run: Run) -> None:
    records, _ = load_ingested(scenario_run)
    dropped = load_dropped(scenario_run)
    assert dropped and len(dropped) == 8 and all(r.split == "train" for r in dropped)
    kept_train = [r for r in records if r.split == "train"]
    base, base_inputs = split_records(scenario_run, "baseline")
    oracle, inputs = split_records(scenario_run, "oracle")
    assert _ids(base["train"]) == _ids(kept_train)  # the baseline: what the scenario kept
    assert _ids(oracle["train"]) == _ids(kept_train) + _ids(dropped)  # and nothing else
    assert len(set(_ids(oracle["train"]))) == len(oracle["train"])  # no record twice
    assert all(r.source == "real" for r in oracle["train"])  # no synthetic image
    for split in ("val", "test"):  # untouched: the arms are measured on the same images
        assert _ids(oracle[split]) == _ids(base[split])
    assert inputs == base_inputs == {"ingest": scenario_run.output_hash("ingest")}
    with pytest.raises(ConfigError, match="oracle arm trains on real images only"):
        split_records(scenario_run, "oracle", delta=1.0)


def test_an_oracle_without_a_scenario_says_why_it_needs_one(run: Run) -> None:
    assert load_dropped(run) is None  # kind none: nothing was withheld
    with pytest.raises(ConfigError, match=r"nothing to restore.*use the baseline arm"):
        split_records(run, "oracle")
    with pytest.raises(ConfigError, match=r"data\.scenario\.kind is none"):
        train(run, tiny_config(epochs=1), "oracle", progress=False)
    assert not run.stage_dir("train/oracle").exists()  # refused before any work


def test_the_oracle_trains_like_any_arm(scenario_run: Run) -> None:
    cfg = tiny_config(steps=4, epochs=2)
    for arm in ("baseline", "oracle"):
        train(scenario_run, cfg, arm, progress=False)
    base, oracle = (json.loads((scenario_run.stage_dir(f"train/{a}") / "metrics.json")
                               .read_text()) for a in ("baseline", "oracle"))  # fmt: skip
    assert oracle["arm"] == "oracle" and set(oracle) == set(base)
    assert oracle["optimizer_steps"] == base["optimizer_steps"] == 4
    assert oracle["images_seen"] == base["images_seen"]
    counts = scenario_run.require("train/oracle").counts
    assert counts["train_images"] == scenario_run.require("train/baseline").counts[
        "train_images"] + 8 and counts["synthetic_images"] == 0  # fmt: skip


def test_train_arm_gives_the_oracle_the_comparisons_steps_and_no_delta(
    scenario_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int | None, float | None]] = []

    def fake_train(run_, cfg_, arm, *, delta=None, **kw):
        calls.append((arm, cfg_.seed, cfg_.steps, delta))
        return SimpleNamespace(status="done", info={})

    monkeypatch.setattr(stage_module, "train", fake_train)
    cfg = AtlantisConfig(train=tiny_config(epochs=2).model_dump(),
                         data={"scenario": SCENARIO}, filter={"delta": [1.0, 2.0]},
                         loop={"arms": ["baseline", "oracle"], "seeds": 2})  # fmt: skip
    steps = comparison_steps(scenario_run, cfg)  # the baseline's own: its kept images
    out = {}
    for arm in cfg.loop.arms:  # a filter delta sweep leaves both real-image arms alone
        out.update(train_arm(scenario_run, cfg, arm, progress=False, say=lambda s: None))
    assert calls == [(arm, seed, steps, None) for arm in cfg.loop.arms for seed in (0, 1)]
    assert out["oracle"] == ["train/oracle", "train/oracle/seed-1"]


def test_the_loop_trains_the_oracle_without_sourcing_it(
    scenario_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_loop``'s arms with the stages around training stubbed: which arm gets what."""
    sourced: list[str] = []
    trained: list[str] = []
    for stage in ("caption.stage.caption", "embed.stage.embed", "insight.stage.insight"):
        monkeypatch.setattr(f"atlantis.{stage}", lambda *a, **k: None)
    monkeypatch.setattr(loop_module, "source_arm", lambda run, cfg, arm, **k: sourced.append(arm))

    def fake_train_arm(run, cfg, arm, **kw):
        trained.append(arm)
        return {arm: [f"train/{arm}"]}

    monkeypatch.setattr(loop_module, "train_arm", fake_train_arm)
    data = load_ingested(scenario_run)[1]
    cfg = AtlantisConfig(data={"format": "imagefolder", "root": data["root"], "split": "zsl",
                               "scenario": SCENARIO},
                         loop={"arms": ["baseline", "oracle", "naive"], "seeds": 1,
                               "untrained_reference": False,
                               "attack": False, "report": False})  # fmt: skip
    result = loop_module.run_loop(scenario_run, cfg, progress=False, say=lambda s: None)
    assert sourced == ["naive"]  # no plan, generate or filter for the oracle
    assert trained == ["baseline", "oracle", "naive"]
    assert result.trainings["oracle"] == ["train/oracle"]


def test_an_oracle_arm_without_a_scenario_is_refused_before_the_loop_starts(
    tmp_path: Path,
) -> None:
    cfg = AtlantisConfig(loop={"arms": ["baseline", "oracle"]})
    problem = oracle_problem(cfg)
    assert problem is not None and problem.startswith("loop.arms: the oracle arm restores")
    assert "\n" not in problem and "use the baseline arm" in problem
    assert problem in check_config(cfg)
    run = Run(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"data\.scenario\.kind is none"):
        loop_module.run_loop(run, cfg, progress=False, say=lambda s: None)
    assert not (run.root / "ingest").exists()  # nothing ran
    with_scenario = cfg.model_copy(update={"data": DataConfig(scenario=SCENARIO)})
    assert oracle_problem(with_scenario) is None
    assert oracle_problem(AtlantisConfig()) is None  # not listed: nothing to say

"""The attack stage end to end on tiny trained arms: results, resume, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from atlantis.config import load_config
from atlantis.errors import ConfigError, StageError
from atlantis.robustness import pgd as pgd_module
from atlantis.robustness.config import AttackConfig
from atlantis.robustness.stage import attack, load_attack, query_indices
from atlantis.store.run import Run
from atlantis.train.stage import load_metrics

GRID = AttackConfig(steps=[1, 5], eps=[0.05, 0.5], device="cpu")


class Killed(RuntimeError):
    """Stands in for a kill in the middle of the attack."""


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the eps of every ``pgd_attack`` call (one per query batch)."""
    calls: list[float] = []
    real = pgd_module.pgd_attack

    def counting(model, images, **kwargs):
        calls.append(kwargs["eps"])
        return real(model, images, **kwargs)

    monkeypatch.setattr(pgd_module, "pgd_attack", counting)
    return calls


def test_attack_writes_clean_and_adversarial_r1_per_arm(run: Run) -> None:
    m = attack(run, GRID, ["baseline", "sphere"], progress=False)
    assert m.status == "done" and m.counts["cells"] == 8 and m.counts["cells_reused"] == 0
    assert set(m.input_hashes) == {"ingest", "train/baseline", "train/sphere"}
    res = load_attack(run)
    assert res["queries"] == res["gallery"] == 48
    assert res["step_size_rule"] == "2.5 * eps / steps"
    assert list(res["arms"]) == ["baseline", "sphere"]
    for arm, distance in (("baseline", "poincare"), ("sphere", "cosine")):
        out = res["arms"][arm]
        assert out["distance"] == distance
        # all queries, leave-one-out against the clean gallery: the train stage's test R@1
        assert out["clean_R@1"] == pytest.approx(load_metrics(run, arm)["test"]["R@1"])
        cells = {(c["steps"], c["eps"]): c for c in out["adversarial"]}
        assert set(cells) == {(1, 0.05), (1, 0.5), (5, 0.05), (5, 0.5)}
        assert cells[(5, 0.05)]["step_size"] == pytest.approx(2.5 * 0.05 / 5)
        for c in cells.values():
            assert 0 <= c["R@1"] <= out["clean_R@1"]
            assert c["mean_embedding_shift"] > 0
        assert cells[(5, 0.5)]["mean_embedding_shift"] > cells[(5, 0.05)]["mean_embedding_shift"]
        assert cells[(5, 0.5)]["R@1"] < out["clean_R@1"]  # a strong attack breaks retrieval
    parts = sorted(p.name for p in (run.stage_dir("attack") / "parts").iterdir())
    assert "baseline-s5-e0.05.json" in parts and len(parts) == 8


def test_a_tiny_eps_leaves_r1_unchanged(run: Run) -> None:
    res = attack(run, AttackConfig(steps=[10], eps=[1e-5], device="cpu"), ["baseline"],
                 progress=False)  # fmt: skip
    out = load_attack(run)["arms"]["baseline"]
    assert res.status == "done"
    assert out["adversarial"][0]["R@1"] == out["clean_R@1"]
    assert out["adversarial"][0]["mean_embedding_shift"] < 1e-2


def test_max_queries_attacks_a_seeded_subset_against_the_whole_gallery(run: Run) -> None:
    cfg = AttackConfig(steps=[1], eps=[0.1], max_queries=10, seed=3, device="cpu")
    attack(run, cfg, ["baseline"], progress=False)
    res = load_attack(run)
    assert res["queries"] == 10 and res["gallery"] == 48
    picked = query_indices(48, 10, 3)
    assert len(set(picked.tolist())) == 10 and np.all(np.diff(picked) > 0)
    assert np.array_equal(picked, query_indices(48, 10, 3))
    assert not np.array_equal(picked, query_indices(48, 10, 4))
    assert np.array_equal(query_indices(48, None, 3), np.arange(48))


def test_results_do_not_depend_on_the_batch_size(run: Run) -> None:
    cfg = AttackConfig(steps=[2], eps=[0.1], max_queries=12, device="cpu")
    attack(run, cfg, ["baseline"], progress=False)
    first = load_attack(run)
    m = attack(run, cfg.model_copy(update={"batch_size": 5}), ["baseline"], progress=False)
    assert m.counts["cells"] == 1  # up to date: batch size is not part of the config hash
    again = attack(run, cfg.model_copy(update={"batch_size": 5}), ["baseline"], progress=False,
                   force=True)  # fmt: skip
    assert again.counts["cells_reused"] == 0
    second = load_attack(run)
    a, b = first["arms"]["baseline"], second["arms"]["baseline"]
    assert a["clean_R@1"] == b["clean_R@1"]
    assert a["adversarial"][0]["R@1"] == b["adversarial"][0]["R@1"]
    assert a["adversarial"][0]["mean_embedding_shift"] == pytest.approx(
        b["adversarial"][0]["mean_embedding_shift"], rel=1e-3
    )


def test_an_up_to_date_attack_is_skipped(run: Run, counted: list[float]) -> None:
    attack(run, GRID, ["baseline"], progress=False)
    assert counted
    counted.clear()
    attack(run, GRID, ["baseline"], progress=False)
    assert counted == []


def test_a_killed_attack_resumes_without_redoing_finished_cells(
    run: Run, tmp_path, counted: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = Run(tmp_path / "reference")
    shutil.copytree(run.root, reference.root)
    attack(reference, GRID, ["baseline"], progress=False)
    counted.clear()

    real = pgd_module.pgd_attack  # the counting wrapper

    def kill_in_third_cell(model, images, **kwargs):
        if kwargs["eps"] == 0.05 and kwargs["steps"] == 5:
            raise Killed("killed in the third cell")
        return real(model, images, **kwargs)

    monkeypatch.setattr(pgd_module, "pgd_attack", kill_in_third_cell)
    with pytest.raises(Killed):
        attack(run, GRID, ["baseline"], progress=False)
    assert run.read_manifest("attack").status == "failed"
    assert len(list((run.stage_dir("attack") / "parts").iterdir())) == 2
    monkeypatch.setattr(pgd_module, "pgd_attack", real)
    counted.clear()
    m = attack(run, GRID, ["baseline"], progress=False)
    assert m.counts["cells_reused"] == 2
    assert sorted(counted) == [0.05, 0.05, 0.5, 0.5]  # steps 5 only: 2 cells x 2 batches
    assert load_attack(run) == load_attack(reference)


def test_adding_an_arm_reuses_the_cells_of_the_other(run: Run, counted: list[float]) -> None:
    attack(run, GRID, ["baseline"], progress=False)
    m = attack(run, GRID, ["baseline", "sphere"], progress=False)
    assert m.counts["cells_reused"] == 4 and m.counts["cells"] == 8
    # force starts over: nothing is reused
    m = attack(run, GRID, ["baseline"], progress=False, force=True)
    assert m.counts["cells_reused"] == 0


def test_a_changed_setting_does_not_reuse_stale_cells(run: Run) -> None:
    attack(run, AttackConfig(steps=[1], eps=[0.1], device="cpu"), ["baseline"], progress=False)
    m = attack(run, AttackConfig(steps=[1], eps=[0.1], step_size=0.01, device="cpu"),
               ["baseline"], progress=False)  # fmt: skip
    assert m.counts["cells_reused"] == 0
    cell = load_attack(run)["arms"]["baseline"]["adversarial"][0]
    assert cell["step_size"] == 0.01
    assert load_attack(run)["step_size_rule"] == "fixed 0.01"


def test_a_missing_train_stage_names_the_command(run: Run) -> None:
    with pytest.raises(StageError, match=r"atlantis train .* --arm targeted"):
        attack(run, GRID, ["baseline", "targeted"], progress=False)
    with pytest.raises(StageError, match=r"--arm targeted --delta 1.5"):
        attack(run, GRID, ["targeted/delta-1.5"], progress=False)
    with pytest.raises(ConfigError, match="arm name"):
        attack(run, GRID, ["../x"], progress=False)
    with pytest.raises(ConfigError, match="no arm to attack"):
        attack(run, GRID, [], progress=False)
    with pytest.raises(StageError, match="atlantis attack RUN"):
        load_attack(run)


def test_a_missing_best_checkpoint_is_a_stage_error_too(run: Run) -> None:
    (run.stage_dir("train/baseline") / "best.pt").unlink()
    with pytest.raises(StageError, match=r"best\.pt is missing.*--force"):
        attack(run, GRID, ["baseline"], progress=False)


def test_the_attack_section_validates_its_values() -> None:
    cfg = load_config(overrides=["attack.eps=[0.5, 0.05, 0.05]", "attack.steps=[10, 1]"])
    assert cfg.attack.eps == [0.05, 0.5] and cfg.attack.steps == [1, 10]
    for bad in ("attack.eps=[0]", "attack.eps=[1.5]", "attack.eps=[]", "attack.steps=[0]",
                "attack.step_size=0", "attack.max_queries=0", "attack.epsilon=[0.1]"):  # fmt: skip
        with pytest.raises(ConfigError, match="attack"):
            load_config(overrides=[bad])
    assert json.dumps(AttackConfig().model_dump())  # plain JSON: goes into the manifest

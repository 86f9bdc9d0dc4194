"""``atlantis attack`` on the command line."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from atlantis.cli import attack_cmd  # registers the command
from atlantis.cli.main import app
from atlantis.robustness.stage import load_attack
from atlantis.store.run import Run


def test_attack_prints_one_column_per_trained_arm_and_saves_the_config(run: Run) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["attack", str(run.root), "--steps", "1", "--eps", "0.05,0.5",
                                 "--max-queries", "8", "--set", "attack.device=cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "8 queries against a gallery of 48" in out
    assert "baseline" in out and "sphere" in out and "clean" in out
    assert "0.05" in out and "0.5" in out
    res = load_attack(run)
    assert list(res["arms"]) == ["baseline", "sphere"]  # every finished train/<arm>
    clean = f"{100 * res['arms']['sphere']['clean_R@1']:.1f}"
    assert clean in out
    saved = yaml.safe_load(run.config_path.read_text())["attack"]
    assert saved["eps"] == [0.05, 0.5] and saved["steps"] == [1] and saved["max_queries"] == 8
    again = runner.invoke(app, ["attack", str(run.root), "--arm", "baseline"])
    assert again.exit_code == 0, again.output
    assert "2 cells reused" in again.output  # the saved config, one arm: its cells are done
    assert list(load_attack(run)["arms"]) == ["baseline"]


def test_nested_delta_stages_are_not_default_arms(run: Run) -> None:
    from tests.robustness.conftest import copy_stage

    copy_stage(run, "train/sphere", run, "train/sphere/delta-1.5")
    assert attack_cmd.trained_arms(run) == ["baseline", "sphere"]


def test_errors_are_one_line_messages(run: Run, ingested_run: Run) -> None:
    runner = CliRunner()
    none = runner.invoke(app, ["attack", str(ingested_run.root)])
    assert none.exit_code == 2 and "no finished train stage" in none.output
    assert f"atlantis train {ingested_run.root} --arm baseline" in none.output
    missing = runner.invoke(app, ["attack", str(run.root), "--arm", "targeted"])
    assert missing.exit_code == 2 and "--arm targeted" in missing.output
    bad = runner.invoke(app, ["attack", str(run.root), "--eps", "0,0.1"])
    assert bad.exit_code == 2 and "attack.eps" in bad.output
    junk = runner.invoke(app, ["attack", str(run.root), "--steps", "one"])
    assert junk.exit_code == 2 and "comma-separated ints" in junk.output

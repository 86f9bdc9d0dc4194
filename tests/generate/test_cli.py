"""``atlantis generate`` and ``atlantis sources`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

import atlantis.cli.generate_cmd  # noqa: F401 - registers the commands
from atlantis.cli.app import app
from atlantis.store.run import Run
from tests.generate.conftest import plan_rows, write_plan

runner = CliRunner()


def test_generate_with_the_tiny_pipeline_then_switch_source(tmp_path: Path, tiny_sd: Path) -> None:
    run = Run(tmp_path / "run")
    run.root.mkdir()
    write_plan(run, plan_rows(3))
    res = runner.invoke(app, ["generate", str(run.root), "--arm", "targeted", "--source",
                              f"diffusers:{tiny_sd}", "-O", "steps=2", "-O",
                              "local_files_only=true", "--device", "cpu",
                              "--set", "generate.dtype=float32"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3 images for 3 plan items: 3 made" in " ".join(res.output.split())
    saved = run.config_path.read_text()
    assert "steps: 2" in saved and f"diffusers:{tiny_sd}" in saved
    pool = tmp_path / "pool"
    pool.mkdir()
    # Switching source drops the old source's options (steps would be unknown to retrieve).
    res = runner.invoke(app, ["generate", str(run.root), "--source", "retrieve"])
    assert res.exit_code == 2 and "retrieve pool" not in res.output
    assert "needs a pool of images" in " ".join(res.output.split())
    assert "retrieve" not in run.config_path.read_text()  # a failed command saves nothing
    res = runner.invoke(app, ["generate", str(run.root), "--arm", "naive", "-O", f"pool={pool}"])
    assert res.exit_code == 2 and "stage 'plan/naive' has not run" in " ".join(res.output.split())


def test_sources_lists_every_source() -> None:
    res = runner.invoke(app, ["sources"])
    assert res.exit_code == 0
    assert "diffusers:<model>" in res.output and "retrieve" in res.output


def test_failures_are_reported(tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    run.root.mkdir()
    rows = plan_rows(2)  # the second asks for the first's image: a failed duplicate
    rows[1].update(description=rows[0]["description"], seed=rows[0]["seed"])
    write_plan(run, rows)
    pool = tmp_path / "pool"
    pool.mkdir()
    Image.new("RGB", (4, 4)).save(pool / "only.png")
    (pool / "captions.tsv").write_text("only.png\ta black square\n")
    res = runner.invoke(app, ["generate", str(run.root), "--source", "retrieve", "-O",
                              f"pool={pool}", "-O", f"captions={pool / 'captions.tsv'}"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = "".join(res.output.split())  # rich wraps long lines anywhere
    assert "1made" in out and "1failed" in out and "failures.jsonl" in out
    line = json.loads((run.root / "generate/targeted/failures.jsonl").read_text())
    assert "duplicate of plan item" in line["reason"]

"""``atlantis export`` on the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import atlantis
from atlantis.cli import export_cmd  # noqa: F401 - registers the command
from atlantis.cli.main import app
from atlantis.store.run import Run


def test_export_prints_the_folder_the_check_and_how_to_use_it(trained: Run,
                                                              tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "model"
    runner = CliRunner()
    args = ["export", str(trained.root), "--arm", "sphere", "--out", str(out)]
    done = runner.invoke(app, [*args, "--format", "torchscript"])
    assert done.exit_code == 0, done.output
    assert f"exported train/sphere, seed 0 to {out}: cosine 16-d, 32 px" in done.output
    assert "torchscript: model.torchscript.pt, max |diff| vs PyTorch" in done.output
    assert f"-e model:{out}" in done.output
    assert atlantis.load_model(out).distance == "cosine"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "not empty; pass --force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_untrained_arm_and_unknown_format_are_one_line_errors(trained: Run,
                                                              tmp_path: Path) -> None:  # fmt: skip
    runner = CliRunner()
    out = ["--out", str(tmp_path / "m")]
    missing = runner.invoke(app, ["export", str(trained.root), "--arm", "targeted", *out])
    assert missing.exit_code == 2
    assert f"Train it with: atlantis train {trained.root} --arm targeted" in missing.output
    bad = runner.invoke(app, ["export", str(trained.root), *out, "--format", "tflite"])
    assert bad.exit_code == 2 and "valid: onnx, torchscript" in bad.output
    assert not (tmp_path / "m").exists()

"""The folder's checks: tampered weights, no or unknown config, and atomic (re)writing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import atlantis
from atlantis.errors import ConfigError
from atlantis.export import formats
from atlantis.export.exporter import export_run
from atlantis.export.folder import CONFIG_FILE, WEIGHTS_FILE, ModelFolderError
from atlantis.store.run import Run


@pytest.fixture
def copy(exports: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the Poincaré export that a test may damage."""
    return Path(shutil.copytree(exports["baseline"], tmp_path / "model"))


def test_tampered_weights_are_refused(copy: Path) -> None:
    weights = copy / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match=r"differs from the model_hash.*changed or damaged"):
        atlantis.load_model(copy)


def test_folder_without_config_or_of_another_version_is_refused(copy: Path,
                                                                tmp_path: Path) -> None:  # fmt: skip
    config = json.loads((copy / CONFIG_FILE).read_text())
    (copy / CONFIG_FILE).write_text(json.dumps({**config, "version": 99}))
    with pytest.raises(ModelFolderError, match=r"version 99.*reads version 1 only"):
        atlantis.load_model(copy)
    (copy / CONFIG_FILE).unlink()
    with pytest.raises(ConfigError, match=f"no {CONFIG_FILE}.*atlantis export RUN"):
        atlantis.load_model(copy)
    with pytest.raises(ConfigError, match="no such folder"):
        atlantis.load_model(tmp_path / "missing")


def test_existing_out_needs_force_and_force_replaces_only_an_export(trained: Run,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    first = export_run(trained.root, "baseline", out).config
    with pytest.raises(ModelFolderError, match="not empty; pass --force"):
        export_run(trained.root, "sphere", out)
    second = export_run(trained.root, "sphere", out, force=True).config
    assert atlantis.load_model(out).model_hash == second["model_hash"] != first["model_hash"]
    other = tmp_path / "not-a-model"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ModelFolderError, match="not an earlier export"):
        export_run(trained.root, "baseline", other, force=True)
    assert (other / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-model", "out"]  # no leftovers


def test_a_failed_export_leaves_no_folder(trained: Run, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(formats, "TOLERANCE", -1.0)  # every copy "fails" its verification
    with pytest.raises(formats.ExportVerificationError, match=r"max \|diff\|.*tolerance"):
        export_run(trained.root, "baseline", tmp_path / "out", formats=["torchscript"])
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its hidden temp folder

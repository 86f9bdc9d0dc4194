"""A trained run as both model and gallery: ``index RUN --arm baseline --run RUN --split test``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from atlantis.cli.main import app
from atlantis.config import DataConfig
from atlantis.data.ingest import ingest
from atlantis.errors import ConfigError
from atlantis.search.index import gallery_from_run
from atlantis.store.run import Run
from atlantis.train.stage import train
from tests.train.conftest import make_dataset, tiny_config

runner = CliRunner()


def test_trained_poincare_run_indexes_its_test_split(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = Run(tmp_path / "run")
        ingest(run, DataConfig(format="imagefolder", root=str(make_dataset(tmp_path / "data",
                                                                          per_class=3)),
                               split="zsl"))  # fmt: skip
        gallery = gallery_from_run(run.root, "test")
        assert len(gallery) == 24 and all(it.path.is_file() for it in gallery)
        with pytest.raises(ConfigError, match="valid: train, val, test"):
            gallery_from_run(run.root, "tset")
        res = runner.invoke(app, ["index", str(run.root), "--run", str(run.root),
                                  "--out", str(tmp_path / "idx")])  # fmt: skip
        assert res.exit_code == 2 and "none yet" in " ".join(res.output.split())
        train(run, tiny_config(epochs=1), progress=False)
        res = runner.invoke(app, ["index", str(run.root), "--arm", "baseline", "--run",
                                  str(run.root), "--split", "test", "--out",
                                  str(tmp_path / "idx"), "--device", "cpu"])  # fmt: skip
        assert res.exit_code == 0, res.output
        meta = json.loads((tmp_path / "idx" / "index.json").read_text())
        assert meta["distance"] == "poincare" and meta["embedder_spec"].startswith("checkpoint:")
        query = gallery[5]
        res = runner.invoke(app, ["search", str(tmp_path / "idx"), str(query.path), "--k", "3",
                                  "--json", "--device", "cpu"])  # fmt: skip
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)["results"][0]
        assert out["label"] == query.label and out["hits"][0]["id"] == query.id
        assert out["hits"][0]["distance"] == pytest.approx(0, abs=1e-3)
    finally:
        torch.set_num_threads(threads)

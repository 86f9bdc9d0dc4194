"""``-e model:DIR``: an exported model as an embedder, through the existing stages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import atlantis
from atlantis.config import EmbedConfig, EvalConfig
from atlantis.embed.exported_backend import ExportedEmbedder
from atlantis.embed.registry import create_embedder, list_embedders
from atlantis.errors import ConfigError
from atlantis.evaluation.stage import evaluate
from atlantis.store.run import Run

from .conftest import stored_test_vectors


def test_model_embedder_gives_the_stored_vectors(trained: Run, exports: dict[str, Path]) -> None:
    folder = exports["baseline"]
    embedder = create_embedder(f"model:{folder}", batch_size=7)
    assert isinstance(embedder, ExportedEmbedder)
    model_hash = atlantis.load_model(folder).model_hash
    assert embedder.key == f"model v1 hash={model_hash}"
    assert (embedder.dim, embedder.distance, embedder.curvature) == (16, "poincare", 0.1)
    paths, stored = stored_test_vectors(trained, "train/baseline")
    vectors = embedder.embed_files(paths, progress=False)
    np.testing.assert_allclose(vectors, stored, atol=1e-5, rtol=0)
    assert "model:<model>" in list_embedders()


def test_evaluate_with_the_model_embedder_reproduces_the_test_recall(
    trained: Run, exports: dict[str, Path], tmp_path: Path
) -> None:
    run = Run(shutil.copytree(trained.root, tmp_path / "run"))
    result = evaluate(run, EmbedConfig(embedder=f"model:{exports['sphere']}", batch_size=8),
                      EvalConfig(split="test"), progress=False)  # fmt: skip
    metrics = json.loads((run.stage_dir("train/sphere") / "metrics.json").read_text())
    assert result["distance"] == "cosine"
    assert result["R@1"] == pytest.approx(metrics["test_recall"]["R@1"])


def test_bad_folder_and_other_size_are_config_errors(exports: dict[str, Path],
                                                     tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=r"no atlantis-model\.json"):
        create_embedder(f"model:{tmp_path}")
    with pytest.raises(ConfigError, match="trained at 32 px"):
        create_embedder(f"model:{exports['baseline']}", image_size=64)
    with pytest.raises(ConfigError, match="needs a model"):
        create_embedder("model")

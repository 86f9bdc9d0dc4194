"""A trained model scored by the existing evaluate stage through ``checkpoint:<folder>``."""

from __future__ import annotations

import json

import pytest

from atlantis.config import EmbedConfig, EvalConfig
from atlantis.embed import checkpoint_backend, registry
from atlantis.embed.registry import create_embedder
from atlantis.errors import ConfigError
from atlantis.evaluation.stage import evaluate
from atlantis.store.run import Run
from atlantis.train.stage import train

from .conftest import tiny_config


@pytest.fixture(autouse=True)
def checkpoint_backend_registered(monkeypatch):
    """``checkpoint`` takes a ``:<path>`` part (the registry lists it once wired)."""
    monkeypatch.setattr(registry, "BACKENDS_WITH_MODEL",
                        registry.BACKENDS_WITH_MODEL | {"checkpoint"})  # fmt: skip
    assert "checkpoint" in registry.EMBEDDERS and checkpoint_backend.KEY_VERSION == 1


def test_evaluate_stage_reproduces_the_train_stage_test_recall(run: Run) -> None:
    train(run, tiny_config(epochs=2), progress=False)
    folder = run.stage_dir("train/baseline")
    spec = f"checkpoint:{folder}"
    embedder = create_embedder(spec)
    assert embedder.distance == "poincare" and embedder.dim == 16
    # no distance given: the checkpoint's own (the Poincaré ball, its curvature)
    result = evaluate(run, EmbedConfig(embedder=spec, batch_size=8), EvalConfig(split="test"),
                      progress=False)  # fmt: skip
    assert result["distance"] == "poincare"
    trained = json.loads((folder / "metrics.json").read_text())
    assert result["R@1"] == pytest.approx(trained["test_recall"]["R@1"])
    assert result["num_queries"] == trained["test"]["num_queries"]

    key = embedder.key
    train(run, tiny_config(epochs=3), progress=False, force=True)  # retrained in place
    assert create_embedder(spec).key != key  # the content fingerprint changed


def test_missing_checkpoint_and_wrong_size_are_config_errors(run: Run, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"not found.*RUN/train/baseline"):
        create_embedder(f"checkpoint:{tmp_path}")
    train(run, tiny_config(epochs=1), progress=False)
    wrong = create_embedder(f"checkpoint:{run.stage_dir('train/baseline')}", image_size=64)
    with pytest.raises(ConfigError, match="trained at 32 px"):
        wrong.load()

"""``atlantis.load_model(DIR)``: the exported model gives the run's own test vectors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import atlantis
from atlantis.export.model import ExportedModel
from atlantis.store.run import Run

from .conftest import stored_test_vectors


@pytest.mark.parametrize(("arm", "distance"), [("baseline", "poincare"), ("sphere", "cosine")])
def test_embed_reproduces_the_train_stage_test_embeddings(
    trained: Run, exports: dict[str, Path], arm: str, distance: str
) -> None:
    loaded = atlantis.load_model(exports[arm])
    assert isinstance(loaded, ExportedModel) and not loaded.model.training
    assert (loaded.distance, loaded.dim, loaded.image_size) == (distance, 16, 32)
    assert loaded.curvature == (0.1 if distance == "poincare" else 0.0)
    assert loaded.model_hash == loaded.config["model_hash"] and len(loaded.model_hash) == 64
    paths, stored = stored_test_vectors(trained, f"train/{arm}")
    vectors = loaded.embed(paths, batch_size=5)  # other batches than the train stage's
    assert vectors.dtype == np.float32 and vectors.shape == stored.shape
    np.testing.assert_allclose(vectors, stored, atol=1e-5, rtol=0)
    images = [Image.open(p) for p in paths[:3]]  # PIL images, RGBA ones included
    np.testing.assert_allclose(loaded.embed(images), vectors[:3], atol=1e-5, rtol=0)
    assert loaded.embed([]).shape == (0, 16)


def test_import_atlantis_stays_light() -> None:
    code = ("import sys, atlantis; assert 'torch' not in sys.modules; "
            "assert callable(atlantis.load_model); assert 'torch' in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'load_modle'"):
        atlantis.load_modle  # noqa: B018

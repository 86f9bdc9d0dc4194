"""ONNX and TorchScript copies, for a sphere and a Poincaré head, verified at export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import atlantis
from atlantis.embed.preprocess import open_image_rgb
from atlantis.errors import ConfigError
from atlantis.export.formats import TOLERANCE, check_formats
from atlantis.store.run import Run
from atlantis.train.model import image_transforms

from .conftest import stored_test_vectors


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("arm", ["baseline", "sphere"])  # poincare and sphere heads
def test_exported_copies_match_the_pytorch_model(trained: Run, exports: dict[str, Path],
                                                 arm: str) -> None:  # fmt: skip
    import onnxruntime

    folder = exports[arm]
    loaded = atlantis.load_model(folder)
    recorded = loaded.config["formats"]
    for name in ("onnx", "torchscript"):
        assert 0 <= recorded[name]["max_abs_diff"] <= TOLERANCE == recorded[name]["tolerance"]
        assert recorded[name]["images"] == "4 test images of the run"
        print(f"{arm} {name}: recorded max |diff| {recorded[name]['max_abs_diff']:.2e}")
    # and again here, on other images and another batch size than the export used
    paths, stored = stored_test_vectors(trained, f"train/{arm}")
    transform = image_transforms(32, loaded.config["interpolation"], train=False)
    pixels = torch.stack([transform(open_image_rgb(p)) for p in paths[-7:]])
    session = onnxruntime.InferenceSession(str(folder / recorded["onnx"]["file"]))
    onnx_out = session.run(["embeddings"], {"pixels": pixels.numpy()})[0]
    script = torch.jit.load(str(folder / recorded["torchscript"]["file"]))
    with torch.inference_mode():
        script_out = script(pixels).numpy()
    for out in (onnx_out, script_out):
        np.testing.assert_allclose(out, stored[-7:], atol=1e-4, rtol=0)


def test_unknown_format_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="'tflite': unknown; valid: onnx, torchscript"):
        check_formats(["tflite"])
    assert check_formats(["ONNX", "onnx", "torchscript"]) == ["onnx", "torchscript"]

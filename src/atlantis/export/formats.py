"""ONNX and TorchScript copies of the model, each checked against PyTorch when written.

A converted graph can differ from the model it came from (an op traced as a constant, a
different kernel, a shape specialised to the example batch). So every copy is run on a
few images at export time, on a batch size other than the one it was traced with, and its
largest absolute difference to the PyTorch model's embeddings is printed and recorded;
above ``TOLERANCE`` the export fails rather than ship a model that ranks differently.

Both take what the PyTorch model takes: RGB pixels ``[N, 3, S, S]``, uint8 (or float in
[0, 1]), resized and centre-cropped as ``image_size`` / ``interpolation`` say; the
normalisation and the head (sphere or Poincaré ball) are inside the graph.

* ``onnx``: ``torch.onnx.export`` (the dynamo exporter), dynamic batch axis, one file
  (weights over 1.5 GB in ``model.onnx.data`` beside it); verified with onnxruntime on the CPU. Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime).
* ``torchscript``: ``torch.jit.trace``; load with ``torch.jit.load`` (no atlantis needed).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlantis.embed.base import import_optional
from atlantis.errors import AtlantisError, ConfigError

#: Largest allowed |exported - PyTorch| on any embedding coordinate (fp32 on the CPU).
TOLERANCE = 1e-3
INPUT, OUTPUT = "pixels", "embeddings"
FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
#: Larger weights go to ``model.onnx.data`` beside the graph (protobuf's 2 GB limit).
ONNX_INLINE_BYTES = 1_500_000_000


class ExportVerificationError(AtlantisError):
    """An exported copy gives other embeddings than the PyTorch model it came from."""


def check_formats(formats: list[str]) -> list[str]:
    """The asked formats, deduplicated, validated, and their packages importable (early)."""
    out = list(dict.fromkeys(f.strip().lower() for f in formats))
    unknown = [f for f in out if f not in FILES]
    if unknown:
        raise ConfigError(f"--format {unknown[0]!r}: unknown; valid: {', '.join(FILES)}")
    if "onnx" in out:
        for module in ("onnx", "onnxscript", "onnxruntime"):
            import_optional(module, module, "onnx", "atlantis export --format onnx")
    return out


def export_format(name: str, model: torch.nn.Module, folder: Path,
                  pixels: torch.Tensor) -> dict[str, Any]:  # fmt: skip
    """Write format ``name`` into ``folder``, verify it; returns what the JSON records."""
    path = folder / FILES[name]
    trace_with = pixels[: max(1, len(pixels) // 2)]  # verified on another batch size
    run = _EXPORTERS[name](model, path, trace_with)
    with torch.inference_mode():
        expected = model(pixels).float().cpu().numpy()
    got = np.asarray(run(pixels), dtype=np.float32)
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not diff <= TOLERANCE:
        raise ExportVerificationError(
            f"the {name} export differs from the PyTorch model by max |diff| {diff:.3g} "
            f"(output shape {got.shape} vs {expected.shape}) on {len(pixels)} images, above the "
            f"tolerance {TOLERANCE:g}; nothing was written. Export without --format {name}"
        )
    return {"file": path.name, "input": INPUT, "output": OUTPUT, "max_abs_diff": diff,
            "tolerance": TOLERANCE, "verified_images": len(pixels)}  # fmt: skip


def _torchscript(model: torch.nn.Module, path: Path,
                 example: torch.Tensor) -> Callable[[torch.Tensor], np.ndarray]:  # fmt: skip
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and TracerWarnings: the check below decides
        traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")  # verify the file, not the trace

    def run(pixels: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return loaded(pixels).float().cpu().numpy()

    return run


def _onnx(model: torch.nn.Module, path: Path,
          example: torch.Tensor) -> Callable[[torch.Tensor], np.ndarray]:  # fmt: skip
    ort = import_optional("onnxruntime", "onnxruntime", "onnx", "atlantis export --format onnx")
    batch = torch.export.Dim("batch")
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_shapes={"pixels": {0: batch}},
                          dynamo=True, external_data=size > ONNX_INLINE_BYTES)  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(pixels: torch.Tensor) -> np.ndarray:
        return session.run([OUTPUT], {INPUT: pixels.cpu().numpy()})[0]

    return run


_EXPORTERS: dict[str, Callable[..., Callable[[torch.Tensor], np.ndarray]]] = {
    "onnx": _onnx,
    "torchscript": _torchscript,
}

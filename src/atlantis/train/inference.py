"""Embedding image files with a model, and scoring retrieval with the model's own distance.

Shared by the training loop (validation every epoch), the cached-trunk path (the trunk's
outputs) and the stage's final report (test split, training feedback). Images always get
the eval transform (resize, centre crop): what is measured never depends on augmentation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from atlantis.embed.base import progress_bar
from atlantis.evaluation.recall import evaluate_retrieval
from atlantis.train.data import ImageDataset, LabelledImages
from atlantis.train.model import EmbeddingModel, image_transforms
from atlantis.train.runtime import Runtime

#: Recall@K cut-offs reported on the validation split (those below its size).
VAL_KS = (1, 2, 4, 8)


def embed_paths(model: EmbeddingModel, paths: Sequence[Path], *, batch_size: int = 64,
                num_workers: int = 0, runtime: Runtime | None = None, progress: bool = False,
                desc: str = "embedding",
                forward: Callable | None = None) -> np.ndarray:  # fmt: skip
    """Embed image files with the eval transform: float32 ``[len(paths), D]``.

    ``forward`` replaces ``model`` as the function of the (uint8) pixels, e.g. a trunk.
    """
    device = next(model.parameters()).device
    forward = forward or model
    dataset = ImageDataset(paths, np.zeros(len(paths)), image_transforms(
        model.image_size, model.interpolation, train=False))  # fmt: skip
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    was_training, out = model.training, []
    model.eval()
    with progress_bar(progress) as bar, torch.inference_mode():
        task = bar.add_task(desc, total=len(paths))
        for pixels, _ in loader:
            with runtime.autocast() if runtime is not None else contextlib.nullcontext():
                out.append(forward(pixels.to(device)).float().cpu())
            bar.advance(task, len(pixels))
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.linear.out_features), np.float32)


def retrieval_row(model: EmbeddingModel, vectors: np.ndarray, labels: np.ndarray,
                  prefix: str) -> dict[str, float]:  # fmt: skip
    """R@K (K up to the set's size) and MAP@R with the model's distance, keyed by prefix."""
    ks = [k for k in VAL_KS if k <= len(labels) - 1]
    m = evaluate_retrieval(vectors, labels, ks=ks, distance=model.distance,
                           curvature=model.curvature or 0.1)  # fmt: skip
    row = {f"{prefix}R@{k}": v for k, v in m.recall.items()}
    row[f"{prefix}MAP@R"] = m.map_at_r
    return row


def evaluable(data: LabelledImages | None) -> bool:
    """Whether leave-one-out retrieval on ``data`` means anything (2+ images, 2+ classes)."""
    return data is not None and len(data) >= 2 and len(np.unique(data.labels)) >= 2

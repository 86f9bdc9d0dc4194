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

* class contrast: how much better the pool image's text (caption or CLIP) vector matches
  the item's class's descriptions than those of the best other class of the plan (the
  source sees the whole plan through ``prepare``): a pool image of a neighbouring class
  matches a request about as well as one of the right class, but it matches its own
  class's descriptions better.

They live on different scales, so each row is z-scored over the pool (``(s - mean) / std``)
and the item's score is ``text_weight * z(text) + reference_weight * z(reference) +
class_contrast * z(contrast)``. The domain still counts (it is in the text), and no score
can swamp the others. With every extra weight 0 (or a single planned class and no
references), an item is ranked by the raw text row, exactly as without this module.

Image vectors are cached by file content (``EmbeddingCache`` under ``<cache>/embeddings``,
shared with the embed and filter stages for the same embedder), so a second arm, a re-run
or a pool image the filter embeds later costs a lookup, not a forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from atlantis.embed.base import Embedder


def zscore(rows: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (a constant row becomes 0)."""
    rows = np.asarray(rows, dtype=np.float64)
    std = rows.std(axis=-1, keepdims=True)
    return (rows - rows.mean(axis=-1, keepdims=True)) / np.where(std > 0, std, 1.0)


def class_prototypes(encode: Callable[[list[str]], np.ndarray],
                     texts: Sequence[Sequence[str]]) -> np.ndarray:  # fmt: skip
    """One unit vector per class: the mean of its descriptions' text vectors."""
    flat = [t for group in texts for t in group]
    vectors = np.asarray(encode(flat), dtype=np.float64)
    out, start = [], 0
    for group in texts:
        out.append(vectors[start : start + len(group)].mean(axis=0))
        start += len(group)
    return normalized(np.stack(out))


def class_contrast(sims: np.ndarray, own: int) -> np.ndarray:
    """Per pool image, its similarity to class ``own``'s prototype minus the best other
    class's (``sims``: pool x classes, at least two classes).

    Why: text and reference scores rank what looks like *this* request, and a pool image of
    a neighbouring class often does (a "tea" caption matches a "drink" description and a
    "food" one alike). Measured on the demo's 600 targeted items, adding this contrast
    against the plan's other classes raised the picks of the planned class from 196 to 236
    (docs/demo.md).
    """
    others = np.delete(sims, own, axis=1)
    return sims[:, own] - others.max(axis=1)


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

"""Retrieval instead of generation: real images picked from a pool by the text and the item's
real reference images.

Geng et al. (NeurIPS 2024) found that retrieving real images from a large pool by text can
beat synthetic images at the same count; this source is how a user measures that against
generation on the same plan. It is also the offline demo's source (no text-to-image weights
install from a package registry).

The pool is a folder of images the training and test sets should not contain: the generate
stage compares it with the run's dataset first (``pool_leak``) and drops the copies it finds
(``pool_leaks=drop``, the default) or refuses the pool (``pool_leaks=refuse``). Text scoring:

* ``clip=<arch>/<weights>`` set: CLIP text-image similarity between each description and
  each pool image (``open_clip``; pool vectors cached by file content in the run);
* otherwise caption-text similarity with the packaged all-MiniLM-L6-v2 (offline) between
  the description and each image's caption: from ``captions`` (a ``.jsonl`` file of
  ``{"file": <path relative to the pool>, "caption": ...}`` or a tab-separated
  ``<file>\\t<caption>`` file), or written by a captioner (default ``tags``, the offline
  ImageNet tagger) for the images the file does not cover. With ``only_captioned=true``
  the captions file is also the list of usable images (a curated subset of a big folder,
  e.g. without the test classes' images).

**Reference-guided** (``reference_weight`` > 0, the default 1.0): an item that names real
reference images of its class is scored by ``text_weight * z(text) + reference_weight *
z(reference)``, where the reference score is the pool image's mean cosine to those images
in ``image_embedder``'s space (default: the CLIP image tower with ``clip=``, else the offline
``efficientnet-lite0``) and ``z`` standardises each item's scores over the pool
(``reference_score``). Text alone finds the domain the words name more than the class;
references find the class; the sum wants both. **Class contrast** (``class_contrast`` > 0,
default 1.0) adds ``class_contrast * z(contrast)``: how much better the pool image's text
vector matches the item's class's descriptions than the best other planned class's
(prototypes over the whole plan, given by the stage through ``prepare``). Measured on the
demo's 600 targeted items: 183 of the picks were the planned class by text alone, 196 with
references, 236 with references and contrast. With every extra weight 0 an item is ranked
by the raw text score. Each record's ``provenance.params`` holds ``text_score``,
``reference_score`` and ``contrast_score`` (where they apply) and ``score`` (what was
ranked).

**Pool vectors are cached** (caption vectors by the encoder and the captions' hash, image
vectors by file content; see ``pool_text``) under the source's ``cache_dir`` (the generate
stage passes ``RUN/cache``), or, for a source built without one, under
``default_cache_dir()``. Vectors come back bit for bit as computed, so the picks are the
same with or without the cache.

Each item gets the best-scoring image not used yet in this arm (ties go to the first path
in sort order), so no image appears twice. That makes items depend on each other: the
source runs in plan order in one process (``parallel_safe = False``), and ``restore`` marks
the images an earlier or interrupted run already took.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError, DataError
from atlantis.generate.base import ImageSource, PlanItem, PoolView, SourceResult
from atlantis.generate.plan_contrast import PlanContrast
from atlantis.generate.pool_files import (
    IMAGE_SUFFIXES,
    default_cache_dir,
    files_stamp,
    list_pool,
    names_digest,
    none_readable,
    open_pool_image,
    pool_listing,
    resolve_pool,
    unreadable_files,
)
from atlantis.generate.pool_text import (
    MINILM,
    clip_vectors,
    minilm_identity,
    pool_captions,
    read_captions,
    text_vectors,
)
from atlantis.generate.reference_score import ImageSpace, normalized, zscore

__all__ = [  # the pool's helpers stay importable from here
    "DEFAULT_IMAGE", "IMAGE_SUFFIXES", "KEY_VERSION", "LEAK_MODES", "MINILM", "RetrieveSource",
    "default_cache_dir", "list_pool", "minilm_identity", "read_captions", "text_vectors",
]  # fmt: skip

#: Bump when scoring or picking changes, so stored picks are not reused.
KEY_VERSION = 3
LEAK_MODES = ("drop", "refuse")
DEFAULT_IMAGE = "efficientnet-lite0"


class RetrieveSource(ImageSource):
    """The best-matching unused pool image per item: its text, and its reference images."""

    kind = "retrieved"
    parallel_safe = False
    model_attrs = ("_vectors", "_encode", "_space", "_image_vectors", "_clip_embedder")

    def __init__(
        self,
        *,
        pool: str | None = None,
        captions: str | None = None,
        captioner: str = "tags",
        clip: str | None = None,
        only_captioned: bool = False,
        text_weight: float = 1.0,
        reference_weight: float = 1.0,
        class_contrast: float = 1.0,
        image_embedder: str | None = None,
        image_embedder_options: Mapping[str, Any] | None = None,
        pool_leaks: str = "drop",
        batch_size: int = 32,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.batch_size = batch_size
        for name, w in (("text_weight", text_weight), ("reference_weight", reference_weight),
                        ("class_contrast", class_contrast)):  # fmt: skip
            if not (isinstance(w, int | float) and np.isfinite(w) and w >= 0):
                raise ConfigError(f"retrieve: {name} must be a number >= 0, got {w!r}")
        if text_weight == 0 and reference_weight == 0:
            raise ConfigError("retrieve: text_weight and reference_weight are both 0; give "
                              "either a weight above 0 (defaults: 1 and 1)")  # fmt: skip
        if pool_leaks not in LEAK_MODES:
            raise ConfigError(f"retrieve: pool_leaks must be one of {', '.join(LEAK_MODES)}, "
                              f"got {pool_leaks!r}")  # fmt: skip
        self.text_weight, self.reference_weight = float(text_weight), float(reference_weight)
        self.class_contrast = float(class_contrast)
        self._contrast = PlanContrast()
        self.image_embedder = image_embedder or (f"open_clip:{clip}" if clip else DEFAULT_IMAGE)
        # e.g. {"image_size": 128}: the run's embed settings, so the reference images' vectors
        # are the embed stage's (cached) and the filter finds the picks' vectors cached too
        self.image_embedder_options = dict(image_embedder_options or {})
        if self.reference_weight > 0 and image_embedder:  # a typo fails now, listing the names
            self._create_image_embedder("cpu")
        self.pool_leaks = pool_leaks
        self.pool = resolve_pool(pool)
        self.captions_file = Path(captions).expanduser().resolve() if captions else None
        self.captioner = captioner
        self.clip = clip
        self.files = pool_listing(self.pool, self.captions_file, only_captioned)
        self._listed = tuple(self.files)  # the identity's files; ``files`` loses bad ones
        self.unusable: dict[str, str] = {}  # file -> why it is never picked
        self.excluded: dict[str, str] = {}  # file -> why the stage ruled it out (a leak)
        self.used: set[str] = set()
        self._screened = False
        self._identity: str | None = None
        self._captions: list[str] = []
        self._vectors: np.ndarray | None = None
        self._encode: Callable[[list[str]], np.ndarray] | None = None
        self._space: ImageSpace | None = None
        self._image_vectors: np.ndarray | None = None
        self._clip_embedder: Any = None

    # ------------------------------------------------------------ identity

    @property
    def scorer(self) -> str:
        return f"open_clip:{self.clip}" if self.clip else MINILM

    @property
    def identity(self) -> str:
        if self._identity is None:
            pool = files_stamp([self.pool / f for f in self._listed])
            caps = files_stamp([self.captions_file]) if self.captions_file else None
            # The pool by content stamp, not path: a pool moved with its files reuses picks.
            ident = {"source": "retrieve", "v": KEY_VERSION, "pool_stamp": pool, "captions": caps, "scorer": self.scorer,
                     "captioner": None if self.clip else self.captioner, "pool_leaks": self.pool_leaks,
                     "excluded": names_digest(sorted(self.excluded)) if self.excluded else None,
                     "reference": self._reference_identity(),
                     "class_contrast": self.class_contrast}  # fmt: skip
            self._identity = json.dumps(ident, sort_keys=True)
        return self._identity

    def _create_image_embedder(self, device: str) -> Any:
        from atlantis.embed.registry import create_embedder

        return create_embedder(self.image_embedder, device=device, batch_size=self.batch_size,
                               **self.image_embedder_options)  # fmt: skip

    def _reference_identity(self) -> dict[str, Any] | None:
        if not self.uses_references:
            return None

        key = self._create_image_embedder("cpu").key  # cheap: nothing loads
        return {"text_weight": self.text_weight, "weight": self.reference_weight,
                "embedder": key, "combine": "zscore", "reduce": "mean-cosine"}  # fmt: skip

    @property
    def model_name(self) -> str:
        return f"retrieve:{self.scorer}"

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"scorer": self.scorer, "pool": str(self.pool),
                                  "class_contrast": self.class_contrast}  # fmt: skip
        if self.uses_references:
            params.update(image_embedder=self.image_embedder, text_weight=self.text_weight,
                          reference_weight=self.reference_weight)  # fmt: skip
        return params

    @property
    def uses_references(self) -> bool:
        return self.reference_weight > 0

    def parents(self, item: PlanItem) -> list[str]:
        return list(item.reference_image_ids or []) if self.uses_references else []

    def pool_view(self) -> PoolView:
        self._screen()
        return PoolView(self.pool, list(self.files), self.pool_leaks)

    def exclude(self, files: Mapping[str, str]) -> None:
        if self._loaded:  # the loaded score rows follow ``files``
            raise RuntimeError("exclude() pool files before the source loads")
        self.excluded.update(files)
        self.files = [f for f in self.files if f not in files]
        self._identity = None

    @property
    def capacity(self) -> int:
        self._screen()
        return len(self.files)

    def prepare(self, items: Sequence[PlanItem]) -> None:
        """Remember every planned class's descriptions: the class contrast scores an item
        against the other classes of the whole plan, not only those of one ``make`` chunk."""
        self._contrast.prepare(items)

    def restore(self, done: Sequence[ImageRecord]) -> None:
        for record in done:
            file = record.provenance.params.get("pool_file")
            if file:
                self.used.add(str(file))

    # ------------------------------------------------------------ loading

    def _load(self) -> None:
        self._screen()
        paths = [self.pool / f for f in self.files]
        opts = {"device": self.requested_device, "batch_size": self.batch_size,
                "cache_root": self._cache_root, "progress": self.show_progress}  # fmt: skip
        if self.clip:
            # the CLIP embedder is the image space too, unless image_embedder says else
            self._vectors, self._encode, self._clip_embedder = clip_vectors(
                paths, self.clip, **opts
            )
            self._captions = [""] * len(self.files)
            return
        self._captions = pool_captions(
            self.files, paths, self.captions_file, self.captioner, **opts
        )
        from atlantis.insight.minilm import load_minilm

        self._encode = load_minilm()
        self._vectors = text_vectors(self._cache_root / "retrieve", minilm_identity(),
                                     self._captions, self._encode)  # fmt: skip

    def _screen(self) -> None:
        """Drop the unreadable pool files, once (before capacity, leaks or loading)."""
        if not self._screened:
            self._drop_unusable()
            self._screened = True

    def _drop_unusable(self) -> None:
        """Leave out (with a warning naming each) the pool files that are not readable images.

        Done before captioning or embedding the pool, which would otherwise fail on them.
        """
        bad = unreadable_files(self.pool, self.files, self._cache_root)
        for file, why in bad.items():
            self._mark_unusable(file, why)
        self.files = [f for f in self.files if f not in bad]
        if not self.files:
            raise none_readable(self.pool, bad)

    def _mark_unusable(self, file: str, why: str) -> None:
        self.unusable[file] = why
        warnings.warn(f"retrieve pool: skipping {self.pool / file}: {why}; it is never picked",
                      RuntimeWarning, stacklevel=3)  # fmt: skip

    @property
    def _cache_root(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir()

    # ------------------------------------------------------------ picking

    def make(
        self, items: Sequence[PlanItem], references: Mapping[str, Path] | None = None
    ) -> list[SourceResult]:
        self.load()
        assert self._encode is not None and self._vectors is not None
        text = self._encode([it.description for it in items]) @ self._vectors.T
        index = {f: i for i, f in enumerate(self.files)}
        free = np.ones(len(self.files), dtype=bool)
        for file in (*self.used, *self.unusable):
            if file in index:
                free[index[file]] = False
        ref_vectors = self._reference_vectors(items, references or {})
        contrast = (self._contrast.rows(items, self._vectors, self._encode)
                    if self.class_contrast > 0 else [None] * len(items))  # fmt: skip
        results = []
        for item, row, con in zip(items, text, contrast, strict=True):
            parts = {"text": row} if con is None else {"text": row, "contrast": con}
            refs = self.parents(item)
            if refs:
                unknown = [r for r in refs if r not in (references or {})]
                if unknown:
                    results.append(SourceResult(error=f"reference image {unknown[0]!r} was not "
                                                "resolved to a file (not an ingested image)"))  # fmt: skip
                    continue
                ref = self._image_vectors @ np.stack([ref_vectors[r] for r in refs]).T
                parts["reference"] = ref.mean(axis=1)  # mean cosine to the item's references
            result = self._pick(self._score(parts), free, parts)
            if result.ok and refs:
                result.parent_ids = refs
            results.append(result)
        return results

    def _score(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """The ranked row: the raw text score alone, else the weighted z-scores of the parts
        (text, reference, class contrast) that the item has."""
        if len(parts) == 1:
            return parts["text"]
        weights = {"text": self.text_weight, "reference": self.reference_weight,
                   "contrast": self.class_contrast}  # fmt: skip
        return sum(weights[k] * zscore(v) for k, v in parts.items())  # type: ignore[return-value]

    def _reference_vectors(self, items: Sequence[PlanItem],
                           references: Mapping[str, Path]) -> dict[str, np.ndarray]:  # fmt: skip
        """Unit vectors of every reference image the ``items`` name, embedded in one pass
        (and the pool's vectors on first use); {} when no item has references."""
        wanted = sorted({r for it in items for r in self.parents(it) if r in references})
        if not wanted:
            return {}
        if self._space is None:
            embedder = self._clip_embedder
            if embedder is None or self.image_embedder != f"open_clip:{self.clip}":
                embedder = self._create_image_embedder(self.requested_device)
            self._space = ImageSpace(embedder, self._cache_root, self.show_progress)
        if self._image_vectors is None:
            if self._clip_embedder is not None and self._space.embedder is self._clip_embedder:
                self._image_vectors = normalized(self._vectors)  # type: ignore[arg-type]
            else:
                self._image_vectors = self._space.embed([self.pool / f for f in self.files])
        vectors = self._space.embed([Path(references[r]) for r in wanted])
        return dict(zip(wanted, vectors, strict=True))

    def _pick(
        self, row: np.ndarray, free: np.ndarray, parts: dict[str, np.ndarray]
    ) -> SourceResult:
        """The best free image for one item's ``row`` of scores (marked used in ``free``).

        ``parts``: the text and reference score rows, recorded with the pick.

        A file that fails to open now (changed since the pool was checked) is left out with
        a warning, and the next best one is taken.
        """
        while free.any():
            j = int(np.argmax(np.where(free, row, -np.inf)))  # first maximum: earliest path
            free[j] = False
            try:
                result = self._result(
                    j, {"score": row[j], **{f"{k}_score": v[j] for k, v in parts.items()}}
                )
            except DataError as e:
                self._mark_unusable(self.files[j], str(e).removeprefix(f"{e.path}: "))
                continue
            self.used.add(self.files[j])
            return result
        usable = sum(1 for f in self.files if f not in self.unusable)
        n_bad, n_leak = len(self.unusable), len(self.excluded)
        skipped = f" ({n_bad} unreadable one(s) left out)" if n_bad else ""
        skipped += f" ({n_leak} copies of dataset images left out)" if n_leak else ""
        return SourceResult(error=f"retrieve pool exhausted: all {usable} images are used{skipped}")

    def _result(self, j: int, scores: dict[str, Any]) -> SourceResult:
        path = self.pool / self.files[j]
        image = open_pool_image(path)
        params = {"pool_file": self.files[j], "pool_path": str(path), "reference_score": None,
                  **{k: round(float(v), 6) for k, v in scores.items()}}  # fmt: skip
        return SourceResult(image=image, seed=None, params=params,
                            caption=self._captions[j] or None)  # fmt: skip

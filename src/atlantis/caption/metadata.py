"""The ``metadata`` captioner: the captions a dataset already has, used as they are.

Many retrieval datasets ship text (a manifest's caption column, product titles, the emoji
names of the demo set). When it exists it is usually better than any model's caption and
costs nothing, so it is the default. It never looks at pixels (``needs_images`` is False):
the stage does not even open the images.

A record may have several captions; the first non-empty one is the caption (the stage
keeps the full list under ``meta["metadata_captions"]``). Records without any get ``""``,
and the stage counts them as empty, unless a fallback captioner is given (the registry's
options ``fallback="tags"``, ``fallback="transformers:<folder>"`` with ``fallback_options``)
to caption exactly those images, through that captioner's own cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from atlantis.caption.base import Captioner, CaptionStats, clean_caption
from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError

KEY_VERSION = 1


class MetadataCaptioner(Captioner):
    """Captions from the records themselves, optionally a fallback captioner for the rest."""

    needs_images = False

    def __init__(self, *, fallback: Captioner | None = None, **common: Any) -> None:
        """``fallback`` is built by the registry from the ``fallback`` spec and its options
        (``create_captioner("metadata", fallback="tags")``), which keeps this module free
        of the registry that imports it."""
        super().__init__(**common)
        if isinstance(fallback, MetadataCaptioner):
            raise ConfigError("the metadata captioner cannot be its own fallback")
        self.fallback = fallback

    @property
    def is_model(self) -> bool:  # type: ignore[override]
        # Dataset text is not model output; a model fallback makes some captions model output.
        return self.fallback is not None and self.fallback.is_model

    @property
    def key(self) -> str:
        key = f"metadata v{KEY_VERSION}"
        return key + (f" fallback=({self.fallback.key})" if self.fallback else "")

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        raise ConfigError(
            "the metadata captioner reads captions from the records, not from pixels; "
            "use caption_records (or a captioner such as 'tags' for images)"
        )

    def caption_records(
        self,
        records: Sequence[ImageRecord],
        root: Path | str,
        cache_dir: Path | str | None = None,
        progress: bool = True,
    ) -> list[str]:
        """The first non-empty metadata caption of each record; the fallback fills the rest."""
        out = [first_caption(r) for r in records]
        missing = [i for i, text in enumerate(out) if not text]
        fallback_stats = CaptionStats()
        if missing and self.fallback is not None:
            texts = self.fallback.caption_records(
                [records[i] for i in missing], root, cache_dir, progress
            )
            for i, text in zip(missing, texts, strict=True):
                out[i] = text
            fallback_stats = self.fallback.last_stats
        self.last_stats = CaptionStats(
            files=len(records), unique=fallback_stats.unique, cached=fallback_stats.cached,
            computed=fallback_stats.computed, empty=sum(1 for t in out if not t),
            fallback=len(missing) if self.fallback is not None else 0,
        )  # fmt: skip
        return out


def first_caption(record: ImageRecord) -> str:
    """The record's first non-blank caption (whitespace normalised), or ``""``."""
    for text in record.captions:
        cleaned = clean_caption(text, "metadata")
        if cleaned:
            return cleaned
    return ""

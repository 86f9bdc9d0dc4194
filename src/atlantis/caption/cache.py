"""A content-addressed caption store: one append-only JSON Lines file per captioner.

Captioning is the slowest step of a run on a CPU (a vision-language model generates token
by token) and a paid one with a remote API, so every finished caption is kept, keyed by
the sha256 of the image *file bytes*: renamed or duplicated files cost nothing, and a re-run
with the same captioner computes nothing.

Layout: ``<folder>/<sha256(captioner key)[:16]>/captions.jsonl`` of
``{"hash": ..., "caption": ...}`` lines, plus ``key.txt`` with the full key for humans.
Captions from two captioners (another model, prompt or decoding setting) never mix.

Why JSON Lines and not shards like the embedding cache: captions are small text, and an
append-only line file is the simplest thing that survives ``kill -9``. Each batch is
appended and fsync'd before the next starts; a crash mid-write leaves at most one torn
last line, which reading ignores and the next append truncates away.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from atlantis.embed.cache import KEY_FILE, cache_dir_name
from atlantis.errors import DataError
from atlantis.store.atomic import atomic_write_text

CAPTIONS_FILE = "captions.jsonl"


class CaptionCache:
    """Content hash (sha256 hex of the image file) -> caption text, for one captioner key."""

    def __init__(self, folder: Path | str, captioner_key: str) -> None:
        self.captioner_key = captioner_key
        self.root = Path(folder) / cache_dir_name(captioner_key)
        self.path = self.root / CAPTIONS_FILE
        self._captions: dict[str, str] | None = None

    # ---------------------------------------------------------------- reading

    def _check_key_file(self) -> None:
        key_file = self.root / KEY_FILE
        if key_file.exists():
            recorded = key_file.read_text(encoding="utf-8").strip()
            if recorded != self.captioner_key:
                raise DataError(
                    f"this cache folder belongs to captioner {recorded!r}, not "
                    f"{self.captioner_key!r}; delete the folder or point the cache elsewhere",
                    key_file,
                )

    def _load(self) -> dict[str, str]:
        """Read the file once; later lookups are dictionary hits."""
        if self._captions is not None:
            return self._captions
        self._check_key_file()
        captions: dict[str, str] = {}
        bad: list[int] = []
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.endswith("\n"):
                        break  # torn tail of an interrupted append: recomputed next time
                    entry = _parse_line(line)
                    if entry is None:
                        bad += [lineno] if line.strip() else []
                        continue
                    captions[entry[0]] = entry[1]  # a later line wins (same key: same caption)
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            warnings.warn(
                f"{self.path}: ignoring {len(bad)} unreadable caption cache line(s) (line "
                f"{shown}); those images will be captioned again",
                RuntimeWarning,
                stacklevel=3,
            )
        self._captions = captions
        return captions

    def get_many(self, hashes: Iterable[str]) -> dict[str, str]:
        """The cached captions among ``hashes`` (missing ones are simply absent)."""
        captions = self._load()
        return {h: captions[h] for h in hashes if h in captions}

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._load()

    def __len__(self) -> int:
        return len(self._load())

    # ---------------------------------------------------------------- writing

    def put_many(self, hashes: Sequence[str], captions: Sequence[str]) -> None:
        """Append one batch and fsync it before returning (a killed run keeps it)."""
        if len(hashes) != len(captions):
            raise ValueError(f"{len(hashes)} hashes but {len(captions)} captions")
        if not hashes:
            return
        existing = self._load()
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / KEY_FILE).exists():
            atomic_write_text(self.root / KEY_FILE, self.captioner_key + "\n")
        self._repair_torn_tail()
        lines = "".join(
            json.dumps({"hash": h, "caption": c}, ensure_ascii=False) + "\n"
            for h, c in zip(hashes, captions, strict=True)
        )
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
        existing.update(zip(hashes, captions, strict=True))

    def _repair_torn_tail(self) -> None:
        """Cut a torn last line, so the next append does not glue onto it."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)


def _parse_line(line: str) -> tuple[str, str] | None:
    """``(hash, caption)`` of a well-formed line, else None."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    h, caption = data.get("hash"), data.get("caption")
    if not isinstance(h, str) or not isinstance(caption, str):
        return None
    return h, caption

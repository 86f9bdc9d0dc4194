"""The data model: one validated record per image, stored as JSON Lines.

Why JSON Lines rather than Parquet: stages append records as work finishes (a generated
image, a retrieved one), and an append-only line file makes "resume where it stopped" a
matter of reading what is already there; each line is validated on read, so an error names
the exact file and line; the files are human-readable and diff-able; and it needs no
columnar engine. Bulk numbers (embeddings) never go in records: they live in ``.npy`` files
beside them, keyed by record id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from atlantis.errors import DataError, raise_if_disk_full
from atlantis.store.atomic import atomic_open

SCHEMA_VERSION = 1

Split = Literal["train", "val", "test", "unassigned"]
Source = Literal["real", "synthetic", "retrieved"]


class Provenance(BaseModel):
    """Where an image came from: enough to regenerate it or audit it."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | None = None
    seed: int | None = None
    parent_ids: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class ImageRecord(BaseModel):
    """One image of a dataset or run. ``path`` is POSIX, relative to the dataset root."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    path: str = Field(min_length=1)
    label: str
    split: Split = "unassigned"
    captions: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    source: Source = "real"
    provenance: Provenance = Field(default_factory=Provenance)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _relative_inside_root(cls, value: str) -> str:
        return safe_relative_path(value)


def safe_relative_path(value: str) -> str:
    """Normalise a dataset-relative path and reject any that could escape the root."""
    posix = value.replace("\\", "/")
    p = PurePosixPath(posix)
    if p.is_absolute() or posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise ValueError(f"path {value!r} is absolute; paths must be relative to the dataset root")
    parts = [part for part in p.parts if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path {value!r} escapes the dataset root ('..' is not allowed)")
    if not parts:
        raise ValueError("path is empty")
    return "/".join(parts)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "record"
        parts.append(f"field '{field}': {e['msg']}")
    return "; ".join(parts)


def write_records(path: Path | str, records: Iterable[ImageRecord]) -> int:
    """Atomically write ``records`` to a JSONL file; returns the count."""
    n = 0
    with atomic_open(path, "w") as fh:
        for rec in records:
            fh.write(rec.model_dump_json(exclude_defaults=False) + "\n")
            n += 1
    return n


def iter_records(path: Path | str) -> Iterator[ImageRecord]:
    """Yield validated records; a bad line raises ``DataError`` naming file and line.

    A final line without a newline is a write cut short by a crash (appends are
    line-at-a-time) and is ignored, so an interrupted append never poisons the file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("records file does not exist", path)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.endswith("\n"):
                return  # torn tail of an interrupted append
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not valid JSON ({e.msg})", path, lineno) from None
            try:
                yield ImageRecord.model_validate(data)
            except ValidationError as e:
                raise DataError(_format_validation_error(e), path, lineno) from None


def read_records(path: Path | str, *, unique_ids: bool = True) -> list[ImageRecord]:
    """Read and validate a whole records file, checking that ids are unique."""
    records = list(iter_records(path))
    if unique_ids:
        check_unique_ids(records, path)
    return records


def check_unique_ids(records: Iterable[ImageRecord], source: Path | str | None = None) -> None:
    seen: dict[str, str] = {}
    for rec in records:
        if rec.id in seen:
            raise DataError(
                f"duplicate record id {rec.id!r} (paths {seen[rec.id]!r} and {rec.path!r}); "
                "ids must be unique",
                source,
            )
        seen[rec.id] = rec.path


class RecordAppender:
    """Append records one line at a time, durably: the resume log of a long stage.

    Each ``append`` writes a whole line and, every ``sync_every`` records, fsyncs, so after a
    crash the file holds every record that was reported as written (minus at most an
    unsynced tail, which the work loop simply redoes).
    """

    def __init__(self, path: Path | str, sync_every: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._pending = 0
        self._sync_every = max(1, sync_every)

    def _repair_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def append(self, record: ImageRecord) -> None:
        try:
            self._fh.write(record.model_dump_json() + "\n")
        except OSError as exc:
            raise_if_disk_full(exc, self.path)
            raise
        self._pending += 1
        if self._pending >= self._sync_every:
            self.flush()

    def flush(self) -> None:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:  # a torn last line is cut off by the next open
            raise_if_disk_full(exc, self.path)
            raise
        self._pending = 0

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> RecordAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""An ingested dataset: its ordered class list and one record per image.

Readers (``atlantis.data.readers``) turn a dataset's native layout into a ``Dataset``; the
split rules (``atlantis.data.splits``) then assign train / val / test. Class order matters:
the zero-shot split takes "the first half of the classes" in the dataset's own order
(CUB 1-100 / 101-200, Cars 1-98 / 99-196), so readers keep that order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from atlantis.data.records import ImageRecord, check_unique_ids
from atlantis.errors import DataError
from atlantis.registry import Registry


@dataclass(frozen=True)
class SkippedItem:
    """An item left out under ``--skip-bad``: where it was and why."""

    source: str  # file (and line) the item came from
    reason: str
    path: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "reason": self.reason, "path": self.path}


@dataclass
class Dataset:
    """Records of one dataset, with the class list in the dataset's own order.

    ``official_split`` is True when the dataset defines its own zero-shot train/test class
    split (SOP's ``Ebay_train.txt`` / ``Ebay_test.txt``); then each record carries
    ``meta["official_split"]`` in {"train", "test"} and the ``zsl`` rule uses it.
    """

    format: str
    root: Path
    classes: list[str]
    records: list[ImageRecord]
    official_split: bool = False
    skipped: list[SkippedItem] = field(default_factory=list)

    def validate(self) -> None:
        """Cross-record checks every reader relies on: unique ids, known labels, no empty class."""
        check_unique_ids(self.records, self.root)
        known = set(self.classes)
        if len(known) != len(self.classes):
            dup = [c for c, n in Counter(self.classes).items() if n > 1]
            raise DataError(f"class list has duplicate names: {dup[:5]}", self.root)
        for rec in self.records:
            if rec.label not in known:
                raise DataError(
                    f"record {rec.id!r} ({rec.path}) has label {rec.label!r}, which is not in "
                    f"the class list ({len(self.classes)} classes)",
                    self.root,
                )
        counts = Counter(r.label for r in self.records)
        empty = [c for c in self.classes if counts[c] == 0]
        if empty:
            raise DataError(
                f"{len(empty)} class(es) have no images: {empty[:5]}; remove them from the class "
                "list or add images (with --skip-bad, classes emptied by skipped images are dropped)",
                self.root,
            )

    def class_counts(self) -> dict[str, int]:
        counts = Counter(r.label for r in self.records)
        return {c: counts[c] for c in self.classes}


class DatasetReader(Protocol):
    """Reads one native dataset layout under ``root``.

    ``skip_bad=False`` raises ``DataError`` (file + line) at the first bad item;
    ``skip_bad=True`` leaves bad items out and lists them in ``Dataset.skipped``.
    ``verify_images`` opens every image to catch unreadable or non-image files.
    """

    def __call__(
        self, root: Path, *, skip_bad: bool = False, verify_images: bool = True
    ) -> Dataset: ...


READERS: Registry[Dataset] = Registry("dataset format")

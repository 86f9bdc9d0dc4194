"""The common shape of every statistical detector of the Data Insight Generator.

The design follows cleanlab's Datalab: one detector per issue type, and every detector answers
in the same form: a per-item flag and a score in [0, 1] where a LOWER score means a MORE
severe issue (so scores from different detectors sort the same way), plus a compact summary
and an info dict. The same form lets the DIG run any subset of detectors, show them in one
report, and hand an LLM (or the offline rules engine) their summaries without it ever seeing
raw data: ``DetectorResult.to_dict`` is that LLM-facing view, small JSON by construction.

An item key is an image id, a class name, or ``"class|domain"`` for a class x domain cell.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from atlantis.data.records import ImageRecord
from atlantis.registry import Registry

__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorInputs",
    "DetectorResult",
    "ItemIssue",
    "Status",
    "jsonable",
]

Status = Literal["ok", "skipped", "failed"]

# Significant digits kept in to_dict(): plenty for a reader, short JSON, and unlike fixed
# decimals they keep a tiny p-value (1.2e-09) distinct from zero.
_DIGITS = 5


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and sets to plain JSON types; round floats.

    Summaries are built from numpy arithmetic, and one stray ``np.float32`` would make
    ``json.dumps`` fail far from the detector that produced it; NaN/inf become ``None``
    because JSON has no spelling for them.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.{_DIGITS}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return [jsonable(v) for v in items]
    return value


@dataclass(frozen=True)
class ItemIssue:
    """One scored item: ``score`` in [0, 1], lower = more severe (as in Datalab)."""

    key: str
    score: float
    flagged: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"item {self.key!r}: score must be in [0, 1], got {self.score!r}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {"key": self.key, "score": self.score, "flagged": self.flagged, "detail": self.detail}
        )


@dataclass
class DetectorResult:
    """What one detector found; ``error`` is set only when ``status == "failed"``."""

    name: str
    status: Status
    items: list[ItemIssue] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def flagged(self) -> list[ItemIssue]:
        """Flagged items, most severe first (ties by key, so the order is reproducible)."""
        return sorted((i for i in self.items if i.flagged), key=lambda i: (i.score, i.key))

    def to_dict(self, max_items: int = 20) -> dict[str, Any]:
        """JSON-ready view for reports and the LLM: counts, summary and the worst items only."""
        flagged = self.flagged()
        return jsonable(
            {
                "name": self.name,
                "status": self.status,
                "n_items": len(self.items),
                "n_flagged": len(flagged),
                "summary": self.summary,
                "top_items": [i.to_dict() for i in flagged[:max_items]],
                "info": self.info,
                "error": self.error,
            }
        )


@dataclass
class DetectorInputs:
    """Everything a detector may read; any part may be absent (``None``).

    ``records`` is the training split. ``embeddings`` rows are aligned with ``embedding_ids``
    (record ids); rows whose id is not a record are still valid images, they just have no
    label for per-class statistics.
    """

    records: list[ImageRecord] = field(default_factory=list)
    class_domain_counts: dict[str, dict[str, int]] | None = None
    embeddings: np.ndarray | None = None
    embedding_ids: list[str] | None = None

    def __post_init__(self) -> None:
        # A misaligned id list would silently attach every finding to the wrong image.
        if self.embeddings is not None:
            if self.embeddings.ndim != 2:
                raise ValueError(f"embeddings must be 2-D [N, D], got {self.embeddings.shape}")
            if self.embedding_ids is None or len(self.embedding_ids) != len(self.embeddings):
                n_ids = None if self.embedding_ids is None else len(self.embedding_ids)
                raise ValueError(
                    f"embedding_ids must name every embedding row: {len(self.embeddings)} rows, "
                    f"{n_ids} ids"
                )

    def missing(self, requirement: str) -> str | None:
        """Why ``requirement`` is unavailable, or ``None`` when it can be used."""
        if requirement == "records":
            return None if self.records else "no training records"
        if requirement == "class_domain_counts":
            return None if self.class_domain_counts else "no class x domain counts"
        if requirement == "embeddings":
            return None if self.embeddings is not None and len(self.embeddings) else "no embeddings"
        raise ValueError(f"unknown detector requirement {requirement!r}")

    def labels_by_id(self) -> dict[str, str]:
        return {r.id: r.label for r in self.records}


class Detector(ABC):
    """One issue type. Subclasses take their thresholds as constructor keywords."""

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]]

    def __call__(self, inputs: DetectorInputs) -> DetectorResult:
        """Run and time the detector (``info["seconds"]``); callers check ``requires`` first."""
        start = time.perf_counter()
        result = self.run(inputs)
        result.info.setdefault("seconds", time.perf_counter() - start)
        return result

    @abstractmethod
    def run(self, inputs: DetectorInputs) -> DetectorResult:
        """Score every item; inputs named in ``requires`` are guaranteed present."""


class RatioDetector(Detector):
    """A detector flagging items whose count falls below ``threshold`` x an expected count."""

    def __init__(self, threshold: float = 0.5, max_listed: int = 20) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.max_listed = max_listed


DETECTORS: Registry[Detector] = Registry("detector")

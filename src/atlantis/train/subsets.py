"""Nested subsets of an arm's synthetic images: the training sets of a budget curve.

A budget curve trains an arm at several budgets without sourcing anything twice: the arm
is sourced once, at its full budget, and the training set at budget ``b`` is the images the
filter kept among the first ``b`` *sourced* images of one fixed order. Because the order is
fixed, a bigger budget always contains every smaller one, and the filter's work is reused
(a budget that throws more images away pays for them: ``b`` counts what was sourced).

The order must make every prefix look like the whole plan, or a small budget would hold
only the first classes. :func:`nested_order` interleaves the plan's cells (class, domain)
in proportion: the ``i``-th of a cell's ``n`` images sits at position ``(i + 0.5) / n``,
and images are sorted by that position. Within a cell, and between cells at the same
position, the order is a hash of the image id, so it does not depend on the order in which
sourcing finished and a feedback round's images mix in instead of trailing.

``max_kept`` cuts a kept set to a count in the same order: the paper's NA baseline gets as
many images as ATLANTIS kept (``loop.match_kept``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError

__all__ = ["Subset", "nested_order", "select"]


@dataclass(frozen=True)
class Subset:
    """Which of an arm's synthetic images a training uses (None: no limit).

    ``budget``: the kept images among the first ``budget`` sourced ones; ``max_kept``: then
    at most that many of those, in the nested order.
    """

    budget: int | None = None
    max_kept: int | None = None

    def __post_init__(self) -> None:
        for key in ("budget", "max_kept"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ConfigError(f"{key} is {value!r}: give a count of images >= 0")

    @property
    def is_all(self) -> bool:
        return self.budget is None and self.max_kept is None

    def key(self) -> str:
        """The stage-input text of this subset (a changed subset retrains)."""
        return f"budget={self.budget},max_kept={self.max_kept}"


def _hash(image_id: str) -> str:
    return hashlib.sha256(image_id.encode("utf-8")).hexdigest()


def _cell(rec: ImageRecord) -> tuple[str, str]:
    return rec.label, rec.domains[0] if rec.domains else ""


def nested_order(records: Sequence[ImageRecord]) -> list[ImageRecord]:
    """``records`` in the fixed order whose every prefix keeps the cells' proportions."""
    cells: dict[tuple[str, str], list[ImageRecord]] = defaultdict(list)
    for rec in records:
        cells[_cell(rec)].append(rec)
    keyed = []
    for members in cells.values():
        members.sort(key=lambda r: (_hash(r.id), r.id))
        n = len(members)
        keyed += [((i + 0.5) / n, _hash(r.id), r.id, r) for i, r in enumerate(members)]
    keyed.sort(key=lambda t: t[:3])
    return [t[3] for t in keyed]


def select(kept: Sequence[ImageRecord], removed: Sequence[ImageRecord],
           subset: Subset) -> list[ImageRecord]:  # fmt: skip
    """The kept records a training with ``subset`` uses, in the nested order.

    ``kept`` and ``removed`` together are what the arm sourced (the filter's two outputs);
    with no limit the kept records come back as they are.
    """
    if subset.is_all:
        return list(kept)
    kept_ids = {r.id for r in kept}
    order = nested_order([*kept, *removed])
    if subset.budget is not None:
        order = order[: subset.budget]
    chosen = [r for r in order if r.id in kept_ids]
    if subset.max_kept is not None:
        chosen = chosen[: subset.max_kept]
    return chosen


def kept_count(kept: Sequence[ImageRecord], removed: Sequence[ImageRecord],
               budget: int | None) -> int:  # fmt: skip
    """How many images the filter kept among the first ``budget`` sourced ones."""
    return len(select(kept, removed, Subset(budget=budget)))

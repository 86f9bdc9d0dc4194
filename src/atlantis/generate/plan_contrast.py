"""Class contrast over the whole plan, for retrieval: the plan's classes as text prototypes.

A pool image of a neighbouring class matches a request about as well as one of the right
class, but it matches its own class's descriptions better. ``PlanContrast`` remembers every
planned class's descriptions (the source sees the whole plan through ``prepare``, then gets
``make`` calls on chunks of it), encodes one prototype per class once, and gives each item
the row ``reference_score.class_contrast``: how much better each pool image's text vector
matches the item's class than the best other planned class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from atlantis.generate.base import PlanItem
from atlantis.generate.reference_score import class_contrast, class_prototypes


def class_texts(items: Sequence[PlanItem]) -> dict[str, list[str]]:
    """Class -> the descriptions of ``items`` of that class, in plan order."""
    texts: dict[str, list[str]] = {}
    for it in items:
        texts.setdefault(it.class_name, []).append(it.description)
    return texts


class PlanContrast:
    """The planned classes' text prototypes (encoded on first use) and the contrast rows."""

    def __init__(self) -> None:
        self.texts: dict[str, list[str]] = {}  # class -> the plan's descriptions
        self._prototypes: tuple[list[str], np.ndarray] | None = None

    def prepare(self, items: Sequence[PlanItem]) -> None:
        """Remember every planned class's descriptions (the arm's whole plan)."""
        self.texts, self._prototypes = class_texts(items), None

    def rows(
        self, items: Sequence[PlanItem], vectors: np.ndarray,
        encode: Callable[[list[str]], np.ndarray] | None,
    ) -> list[np.ndarray | None]:  # fmt: skip
        """Per item, its class contrast over the pool ``vectors`` (text vectors, one row per
        pool image); None when the plan has a single class or the item's class is not in
        it. Without ``prepare``, the classes of the first call's ``items`` are the plan."""
        if self._prototypes is None:
            texts = self.texts or class_texts(items)
            names = sorted(texts)
            if len(names) < 2:  # nothing to contrast with: no encoding either
                self._prototypes = (names, np.zeros((len(names), 0), dtype=np.float32))
            else:
                assert encode is not None
                self._prototypes = (names, class_prototypes(encode, [texts[c] for c in names]))
        names, protos = self._prototypes
        if len(names) < 2:
            return [None] * len(items)
        sims = vectors @ protos.T  # pool x planned classes
        col = {c: i for i, c in enumerate(names)}
        return [class_contrast(sims, col[it.class_name]) if it.class_name in col else None
                for it in items]  # fmt: skip

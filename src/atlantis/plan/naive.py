"""The naive-untargeted planner: the NA baseline of supplement E.

It spends the same number of synthetic images as the targeted plan but knows nothing of the
insight: each image's class is drawn uniformly at random (seeded) from the training
classes, its prompt is domain-free ("a photo of a {class}"), and no new classes are made.
Comparing arms at equal budget is what shows that *targeting*, not the extra images,
helps (the paper's baseline < NA < ATLANTIS).

Draws use ``random.Random(seed).random()``, whose sequence Python guarantees across
versions, so a seed names the same plan everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from atlantis.errors import ConfigError
from atlantis.plan.descriptions import article, display_name
from atlantis.plan.schema import AllocationRow

REASON = "naive: uniform random class"


def naive_rows(classes: Sequence[str], budget: int, seed: int = 0) -> list[AllocationRow]:
    """``budget`` uniform draws over ``classes``, as one row per drawn class (class order)."""
    if budget <= 0:
        raise ConfigError(f"plan.budget must be a positive number of images, got {budget}")
    if not classes:
        raise ConfigError("the naive planner needs training classes; the ingest has none")
    rng = random.Random(seed)
    counts = dict.fromkeys(classes, 0)
    for _ in range(budget):
        counts[classes[int(rng.random() * len(classes))]] += 1
    return [AllocationRow(class_name=c, domain=None, count=n, step="naive", reason=REASON)
            for c, n in counts.items() if n]  # fmt: skip


def naive_description(class_name: str) -> str:
    """The domain-free prompt: every image of a class shares it; only the seed differs."""
    name = display_name(class_name)
    return f"a photo of {article(name)} {name}"

"""Nested subsets of an arm's synthetic images (the budget curve's training sets)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError
from atlantis.train.subsets import Subset, kept_count, nested_order, select


def rec(i: int, label: str, domain: str | None = None) -> ImageRecord:
    return ImageRecord(id=f"retrieved/arm/{label}-{i}", path=f"g/{label}-{i}.png", label=label,
                       split="train", domains=[domain] if domain else [], source="retrieved")  # fmt: skip


def pool() -> list[ImageRecord]:
    return ([rec(i, "cat", "a") for i in range(30)] + [rec(i, "dog", "b") for i in range(10)]
            + [rec(i, "owl") for i in range(20)])  # fmt: skip


def test_every_prefix_keeps_the_cells_proportions() -> None:
    order = nested_order(pool())
    assert sorted(r.id for r in order) == sorted(r.id for r in pool())
    for n in (6, 12, 30, 60):
        counts = Counter(r.label for r in order[:n])
        for label, share in (("cat", 0.5), ("dog", 1 / 6), ("owl", 1 / 3)):
            assert abs(counts[label] - share * n) <= 1, (n, counts)


def test_order_does_not_depend_on_the_input_order() -> None:
    records = pool()
    assert [r.id for r in nested_order(records)] == [r.id for r in nested_order(records[::-1])]


def test_bigger_budgets_contain_smaller_ones_and_only_kept_images_train() -> None:
    records = pool()
    kept = [r for i, r in enumerate(records) if i % 3]  # a third removed
    removed = [r for i, r in enumerate(records) if not i % 3]
    sets = [{r.id for r in select(kept, removed, Subset(budget=b))} for b in (10, 25, 40, 60)]
    assert all(a <= b for a, b in pairwise(sets))
    assert sets[-1] == {r.id for r in kept}
    assert not sets[-1] & {r.id for r in removed}
    # the budget counts what was sourced, removed images included
    first = nested_order(records)[:10]
    assert sets[0] == {r.id for r in first if r.id in {k.id for k in kept}}
    assert kept_count(kept, removed, 10) == len(sets[0]) < 10


def test_max_kept_cuts_in_the_nested_order() -> None:
    records = pool()
    got = select(records, [], Subset(max_kept=7))
    assert [r.id for r in got] == [r.id for r in nested_order(records)[:7]]
    both = select(records, [], Subset(budget=5, max_kept=7))
    assert len(both) == 5


def test_no_limit_returns_the_kept_set_unchanged() -> None:
    records = pool()
    assert select(records, [], Subset()) == records


@pytest.mark.parametrize("bad", [-1, True])
def test_bad_counts_are_refused_with_the_key(bad) -> None:
    with pytest.raises(ConfigError, match="budget"):
        Subset(budget=bad)

"""How many images each (class, domain) cell gets: the targeted planner's budget policy.

A budget ``B`` (or a per-class target count, which sizes ``B``) is spent in four steps,
each answering one finding of the insight, and the plan says what each step did:

1. **under-represented classes** are brought toward the target ``T`` (the typical class
   size the insight's class-imbalance detector flags against, or ``per_class_target``);
2. **scarce domains**: each scarce (class, domain) cell is filled toward its balanced
   count (the class's size spread evenly over domains, as the insight computed it);
3. **new classes** get a fixed share of ``B`` (kept off the top, so steps 1 and 2 cannot
   starve them), spread evenly over the new classes;
4. the **remainder** is spread over the classes in proportion to their size after steps
   1-3 (which keeps the balance those steps reached), or evenly (``remainder: uniform``).

Inside a class, steps 1, 3 and 4 give to its emptiest domain first (water filling), ties
going to the domain with fewer planned images overall, so classes *and* domains end up
balanced (a plain tie rule would send every odd image to the first domain).

When a step's needs exceed what it may spend (``policy`` caps each step's share of ``B``),
it gives in proportion to the needs. Every split into integers uses the largest-remainder
method in exact integer arithmetic, ties going to the earlier class in the insight's order:
the counts always sum to ``B`` and the same insight always gives the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from atlantis.errors import ConfigError
from atlantis.insight.schema import Insight
from atlantis.insight.sizes import typical_class_size
from atlantis.insight.text import normalise_name
from atlantis.plan.config import PolicyWeights
from atlantis.plan.schema import AllocationRow, Step

K = TypeVar("K", bound=Hashable)
Cell = str | None  # a domain name, or None when the data has no domains


def proportional(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """Split ``total`` in proportion to integer ``weights`` (largest remainder, exact).

    Zero weights everywhere split evenly. Ties of the remainder go to the earlier key.
    """
    keys = list(weights)
    if total <= 0 or not keys:
        return dict.fromkeys(keys, 0)
    w = dict(weights) if sum(weights.values()) > 0 else dict.fromkeys(keys, 1)
    s = sum(w.values())
    out = {k: total * w[k] // s for k in keys}
    by_fraction = sorted(range(len(keys)), key=lambda i: (-(total * w[keys[i]] % s), i))
    for i in by_fraction[: total - sum(out.values())]:
        out[keys[i]] += 1
    return out


def capped(total: int, needs: Mapping[K, int]) -> dict[K, int]:
    """Meet every need when ``total`` allows, else share ``total`` in proportion to needs
    (never giving a key more than it needs)."""
    if total >= sum(needs.values()):
        return dict(needs)
    return proportional(total, needs)


def water_fill(
    n: int, levels: Mapping[K, int], tiebreak: dict[K, int] | None = None
) -> dict[K, int]:
    """Give ``n`` units one at a time to the lowest level; ties go to the lowest
    ``tiebreak`` (updated in place as units are given), then to the earlier key."""
    current = dict(levels)
    given = dict.fromkeys(levels, 0)
    tb = tiebreak if tiebreak is not None else {}
    for _ in range(max(n, 0)):
        k = min(current, key=lambda key: (current[key], tb.get(key, 0)))  # first of equals
        current[k] += 1
        given[k] += 1
        if tiebreak is not None:
            tiebreak[k] = tiebreak.get(k, 0) + 1
    return given


@dataclass
class Allocation:
    """The result: rows per (step, class, domain), and the policy told as text."""

    budget: int
    target: float
    rows: list[AllocationRow] = field(default_factory=list)
    spent: dict[str, int] = field(default_factory=dict)  # step -> images
    explanation: str = ""

    def per_class(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.class_name] = out.get(r.class_name, 0) + r.count
        return out


def allocate(
    insight: Insight,
    budget: int | None = None,
    *,
    per_class_target: int | None = None,
    new_class_share: float = 0.1,
    policy: PolicyWeights | None = None,
    classes: Sequence[str] | None = None,
) -> Allocation:
    """Spend ``budget`` images over the insight's cells (see the module docstring).

    With ``budget=None``, ``per_class_target`` sizes it: the images steps 1 and 2 need to
    bring every class to the target, plus the new-class share of the total.
    """
    policy = policy or PolicyWeights()
    train, new = select_classes(insight, classes)
    typical = typical_class_size(insight.class_counts.values())
    target = float(per_class_target) if per_class_target else typical
    if budget is None:
        if per_class_target is None:
            raise ConfigError("no budget: pass --budget N (images to make) or set "
                              "plan.per_class_target (images per class to reach)")  # fmt: skip
        unlimited = PolicyWeights(remainder=policy.remainder)
        gaps = _spend(insight, 10**9, train, [], target, per_class_target, 0.0, unlimited, True)
        need = gaps.spent.get("under_represented", 0) + gaps.spent.get("scarce_domains", 0)
        extra = round(need * new_class_share / (1 - new_class_share)) if new else 0
        budget = need + extra
        if budget <= 0:
            raise ConfigError(f"every selected class already has plan.per_class_target="
                              f"{per_class_target} images or more: nothing to plan")  # fmt: skip
    if budget <= 0:
        raise ConfigError(f"plan.budget must be a positive number of images, got {budget}")
    return _spend(insight, budget, train, new, target, per_class_target, new_class_share,
                  policy, False)  # fmt: skip


def select_classes(insight: Insight, classes: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The training and new classes to plan for; an unknown requested name is an error."""
    train, new = list(insight.class_names), list(insight.new_classes)
    if classes is None:
        return train, new
    known = {normalise_name(c): c for c in [*train, *new]}
    bad = [c for c in classes if normalise_name(c) not in known]
    if bad:
        listed = ", ".join(train[:40]) + (
            f", ... ({len(train) - 40} more)" if len(train) > 40 else ""
        )
        raise ConfigError(
            f"plan.classes: {', '.join(map(repr, bad))} not in the data. Valid classes: "
            f"{listed}; new classes: {', '.join(new) or 'none'}"
        )
    wanted = {known[normalise_name(c)] for c in classes}
    return [c for c in train if c in wanted], [c for c in new if c in wanted]


def _spend(insight: Insight, budget: int, train: list[str], new: list[str], target: float,
           per_class_target: int | None, new_share: float, policy: PolicyWeights,
           sizing: bool) -> Allocation:  # fmt: skip
    domains: list[Cell] = [d.name for d in insight.domains] if len(insight.domains) >= 2 else [None]
    counts = insight.class_counts
    level = {c: _real_cells(insight, c, domains) for c in train}
    level.update({c: dict.fromkeys(domains, 0) for c in new})
    out = Allocation(budget=budget, target=target)
    label = f"target {per_class_target}" if per_class_target else f"typical {target:.3g}"

    planned: dict[Cell, int] = dict.fromkeys(domains, 0)  # per domain, for water_fill's ties

    def fill(c: str, n: int) -> dict[Cell, int]:
        return water_fill(n, level[c], dict(planned))

    def give(c: str, split: Mapping[Cell, int], step: Step, reason: str) -> None:
        for d, n in split.items():
            if n > 0:
                planned[d] += n
                level[c][d] += n
                out.rows.append(AllocationRow(class_name=c, domain=d, count=n, step=step,
                                              reason=reason, is_new_class=c in new))  # fmt: skip
                out.spent[step] = out.spent.get(step, 0) + n

    reserve = round(new_share * budget) if new else 0

    def left() -> int:  # what steps may still spend: the reserve stays out until step 3
        return budget - sum(out.spent.values()) - (reserve - out.spent.get("new_classes", 0))

    # 1. under-represented classes, toward the target
    flagged = set(insight.under_represented_classes)
    need1 = {c: math.ceil(target - counts.get(c, 0)) for c in train
             if (c in flagged or per_class_target) and counts.get(c, 0) < target}  # fmt: skip
    for c, n in capped(min(left(), int(policy.under_represented * budget)), need1).items():
        give(c, fill(c, n), "under_represented",
             f"under-represented class ({counts.get(c, 0)} vs {label})")  # fmt: skip
    # 2. scarce (class, domain) cells, toward their balanced count
    cells = [s for s in insight.scarce_cells if s.class_name in level and s.domain in domains]
    need2 = {(s.class_name, s.domain): max(0, math.ceil(s.expected) - level[s.class_name][s.domain])
             for s in cells}  # fmt: skip
    why = {(s.class_name, s.domain): f"scarce domain '{s.domain}' for class {s.class_name} "
           f"({s.count} of expected {s.expected:g})" for s in cells}  # fmt: skip
    for (c, d), n in capped(min(left(), int(policy.scarce_domains * budget)), need2).items():
        give(c, {d: n}, "scarce_domains", why[(c, d)])
    if sizing:
        return out
    # 3. new classes: the reserved share, evenly over classes
    for c, n in proportional(reserve, dict.fromkeys(new, 1)).items():
        give(
            c,
            fill(c, n),
            "new_classes",
            f"new class (no real images; {new_share:.0%} of the budget kept for new classes)",
        )
    # 4. the remainder
    pool = train or new
    weights = {c: sum(level[c].values()) if policy.remainder == "proportional" else 1 for c in pool}
    how = ("in proportion to class size after steps 1-3" if policy.remainder == "proportional"
           else "evenly over classes")  # fmt: skip
    for c, n in proportional(left(), weights).items():
        give(c, fill(c, n), "remainder", f"remainder of the budget, {how}")
    out.explanation = _explain(out, label, policy, new_share, need1, need2, len(new))
    return out


def _real_cells(insight: Insight, c: str, domains: list[Cell]) -> dict[Cell, int]:
    if domains == [None]:
        return {None: insight.class_counts.get(c, 0)}
    row = insight.class_domain_counts.get(c, {})
    return {d: int(row.get(d, 0)) for d in domains}


def _explain(a: Allocation, label: str, policy: PolicyWeights, share: float,
             need1: Mapping, need2: Mapping, n_new: int) -> str:  # fmt: skip
    s = a.spent
    lines = [
        f"Budget {a.budget} images; per-class target {a.target:g} ({label}).",
        f"1. under-represented classes (up to {policy.under_represented:.0%} of the budget): "
        f"{len(need1)} classes below the target need {sum(need1.values())} images; "
        f"{s.get('under_represented', 0)} planned, each class's emptiest domains first.",
        f"2. scarce domains (up to {policy.scarce_domains:.0%}): "
        f"{sum(1 for v in need2.values() if v)} cells below their balanced count still need "
        f"{sum(need2.values())} images; {s.get('scarce_domains', 0)} planned.",
        f"3. new classes ({share:.0%} of the budget kept): {s.get('new_classes', 0)} images "
        f"over {n_new} new classes.",
        f"4. remainder ({policy.remainder}): {s.get('remainder', 0)} images.",
        "Inside a class, images go to its emptiest domain first. Integer counts by the "
        "largest-remainder method; ties go to the earlier class.",
    ]
    return "\n".join(lines)


def fit_rows(rows: Sequence[AllocationRow], room: int) -> list[AllocationRow]:
    """``rows`` cut to at most ``room`` images in all, in proportion (largest remainder).

    A feedback round draws from what is left of the arm's budget: when its rows ask for
    more, each keeps its share, rounded so the total is exactly ``room`` (leftover images go
    to the largest fractional parts, ties to the earlier row); rows cut to 0 are dropped.
    Deterministic: the same rows and room always give the same cut.
    """
    asked = sum(r.count for r in rows)
    if asked <= room:
        return list(rows)
    if room <= 0:
        return []
    exact = [r.count * room / asked for r in rows]
    counts = [int(x) for x in exact]
    order = sorted(range(len(rows)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: room - sum(counts)]:
        counts[i] += 1
    return [r.model_copy(update={"count": c}) for r, c in zip(rows, counts, strict=True) if c]

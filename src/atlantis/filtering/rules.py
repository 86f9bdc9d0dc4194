"""Filter rules chosen by name (``filter.rule``): which synthetic images the filter keeps.

A rule is a small function registered under a name: it gets the real and synthetic
embeddings with the filter's config (:class:`RuleInputs`) and returns, per synthetic image,
keep or not and a reason code (:class:`RuleVerdict`), plus JSON-ready details for the
record's ``meta["filter"]``. The stage never branches on rule names; a new rule is one more
registered function and its options are ``filter.*`` keys.

* ``radius``: the paper's ORDC rule (:mod:`atlantis.filtering.ordc`), with the optional
  small-class radius shrinkage (``filter.radius_prior``). Codes: ``inlier`` / ``outlier``.
* ``consistency``: the image's class must win against every other real class
  (:mod:`atlantis.filtering.consistency`). Codes: ``consistent`` / ``inconsistent``.
* ``none``: keeps every image (code ``unfiltered``), e.g. the naive arm's "no ORDC".

``filter.rule`` names one rule, or several joined by ``+`` (``both`` is
``radius+consistency``): an image is kept only if every named rule keeps it, so the
``removed_by`` list of a removed image names each rule that removed it. Every rule treats an
image of a class without real images the same way: code ``new_class``, kept iff
``filter.keep_new_classes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from atlantis.filtering.arrays import resolve_normalize
from atlantis.filtering.consistency import consistency
from atlantis.filtering.ordc import NEW_CLASS, OrdcResult, ordc

__all__ = ["ALIASES", "RULES", "Decision", "RuleInputs", "RuleVerdict", "apply_rules",
           "register_rule", "rule_names"]  # fmt: skip

UNFILTERED = "unfiltered"


@dataclass(frozen=True)
class RuleInputs:
    """What every rule sees: real and synthetic vectors with labels, the config, the delta."""

    real_x: np.ndarray
    real_labels: list[Any]
    syn_x: np.ndarray
    syn_labels: list[Any]
    cfg: Any  # a filtering.config.FilterConfig (not imported: config imports this module)
    delta: float

    @cached_property
    def normalize(self) -> bool:
        """``filter.normalize`` resolved once (``"auto"`` looks at the real vectors), so every
        rule and the reported geometry measure in the same space."""
        return resolve_normalize(self.cfg.normalize, np.asarray(self.real_x))

    @cached_property
    def geometry(self) -> OrdcResult:
        """ORDC at this delta: the class table (sizes, radii) the stage reports whatever the
        rule, and the ``radius`` rule's decision. Computed once per delta."""
        cfg = self.cfg
        return ordc(self.real_x, self.real_labels, self.syn_x, self.syn_labels, self.delta,
                    keep_unknown_classes=cfg.keep_new_classes, normalize=self.normalize,
                    radius_prior=cfg.radius_prior, radius_pool_min=cfg.radius_pool_min)  # fmt: skip


@dataclass(frozen=True)
class RuleVerdict:
    """One rule's decision: per image ``keep``, ``reason`` code, and ``details`` (field name ->
    one JSON-ready value per image, None where it does not apply)."""

    keep: np.ndarray
    reason: np.ndarray
    details: dict[str, list[Any]] = field(default_factory=dict)


Rule = Callable[[RuleInputs], RuleVerdict]
RULES: dict[str, Rule] = {}
#: Names for combinations: ``both`` = ``radius+consistency``.
ALIASES: dict[str, tuple[str, ...]] = {"both": ("radius", "consistency")}


def register_rule(name: str) -> Callable[[Rule], Rule]:
    """Decorator: make ``fn`` selectable as ``filter.rule: <name>``."""

    def add(fn: Rule) -> Rule:
        if name in RULES or name in ALIASES or "+" in name:
            raise ValueError(f"filter rule name {name!r} is taken or contains '+'")
        RULES[name] = fn
        return fn

    return add


def rule_names(spec: str) -> tuple[str, ...]:
    """``"both"`` -> ``("radius", "consistency")``; ``"a+b"`` -> ``("a", "b")``.

    Raises ValueError naming the valid rules for an unknown or repeated name.
    """
    names = ALIASES.get(spec) or tuple(p.strip() for p in str(spec).split("+"))
    unknown = [n for n in names if n not in RULES]
    if unknown or not names:
        valid = ", ".join([*sorted(RULES), *sorted(ALIASES)])
        raise ValueError(f"unknown filter rule {unknown[0] if unknown else spec!r}; valid: "
                         f"{valid} (or rules joined by '+', e.g. 'radius+consistency')")  # fmt: skip
    if len(set(names)) < len(names):
        raise ValueError(f"filter rule {spec!r} names a rule twice")
    return names


# ------------------------------------------------------------------------------ the rules


@register_rule("radius")
def radius_rule(inputs: RuleInputs) -> RuleVerdict:
    """The paper's ORDC rule; its distance, ratio and radius are in the stage's geometry."""
    g = inputs.geometry
    return RuleVerdict(keep=g.keep, reason=g.reason)


@register_rule("consistency")
def consistency_rule(inputs: RuleInputs) -> RuleVerdict:
    """Own class must beat every other real class (nearest centroid or a kNN vote)."""
    cfg = inputs.cfg
    res = consistency(inputs.real_x, inputs.real_labels, inputs.syn_x, inputs.syn_labels,
                      metric=cfg.consistency_metric, vote=cfg.consistency_vote,
                      k=cfg.consistency_k, min_margin=cfg.consistency_margin,
                      keep_unknown_classes=cfg.keep_new_classes,
                      normalize=inputs.normalize)  # fmt: skip
    details: dict[str, list[Any]] = {
        "best_other_class": [res.best_other_class(i) for i in range(len(res.keep))],
        "margin": [float(m) if np.isfinite(m) else None for m in res.margin],
    }
    if res.vote == "knn":
        details["own_votes"] = [int(v) if v >= 0 else None for v in res.own_votes]
    return RuleVerdict(keep=res.keep, reason=res.reason, details=details)


@register_rule("none")
def no_rule(inputs: RuleInputs) -> RuleVerdict:
    """Keep everything (new classes still follow ``keep_new_classes``)."""
    new = inputs.geometry.new_class
    keep = np.where(new, inputs.cfg.keep_new_classes, True)
    return RuleVerdict(keep=keep, reason=np.where(new, NEW_CLASS, UNFILTERED).astype(object))


# ------------------------------------------------------------------------------ combining


@dataclass(frozen=True)
class Decision:
    """The named rules' verdicts and their conjunction (kept iff every rule keeps)."""

    names: tuple[str, ...]
    verdicts: dict[str, RuleVerdict]
    keep: np.ndarray

    def removed_by(self, i: int) -> list[str]:
        """The rules that removed image ``i``, in rule order (empty when kept)."""
        return [n for n in self.names if not self.verdicts[n].keep[i]]

    def reason(self, i: int) -> str:
        """The first removing rule's code, or the first rule's code when kept."""
        by = self.removed_by(i)
        return str(self.verdicts[by[0] if by else self.names[0]].reason[i])

    def info(self, i: int) -> dict[str, Any]:
        """JSON-ready ``meta["filter"]`` fields: each rule's code, and the rules' details."""
        out: dict[str, Any] = {"verdicts": {n: str(v.reason[i]) for n, v in self.verdicts.items()}}
        for v in self.verdicts.values():
            out.update({key: values[i] for key, values in v.details.items()})
        return out


def apply_rules(inputs: RuleInputs, spec: str) -> Decision:
    """Run every rule named by ``spec`` (see :func:`rule_names`) and combine them."""
    names = rule_names(spec)
    verdicts = {n: RULES[n](inputs) for n in names}
    keep = np.logical_and.reduce([np.asarray(v.keep, dtype=bool) for v in verdicts.values()])
    return Decision(names=names, verdicts=verdicts, keep=np.asarray(keep, dtype=bool))

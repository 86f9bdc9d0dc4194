"""IncorporateFeedback (supplement C.2.3): re-plans from filtering and training feedback.

**Algorithm 1, filtering feedback.** The filter stage's ``stats.json`` says, per class and
per domain, how many synthetic images were made and kept (read in either shape: a mapping
``{name: {"total", "kept"}}``, or the list of rows ``atlantis.filtering.stats`` writes,
``[{"class" | "domain": name, "synthetic", "kept", ...}]``). An alert is raised when the
filtered-out fraction of a domain exceeds ``tau_domain`` or that of a class exceeds
``tau_class``; alerts matching the exemption list (``"class:X"``, ``"domain:Y"`` or a bare
name, case-insensitive) are reported but not acted on. Each remaining alert re-plans only
its target: it replaces the removed images not yet replaced by an earlier round (so a loop
converges: kept + replaced tends to the planned count), at most ``cap`` per alert, spread
over the target's cells in proportion to what was planned there.

**Stopping a class the source cannot serve.** Replacing filtered-out images only helps when
the source can make acceptable ones. A class whose kept share is at most
``stop_kept_share`` (5 %) in ``stop_after`` filter results in a row (the current stats and
the class alerts of the filter rounds before), judged on at least ``stop_min_images`` (3)
of its images, is *stopped* (``stop_classes``): no later
round, of either algorithm, asks for it again, and the round's ``stopped`` and note say
so. Its replacements are not redistributed to other classes: nothing says those need
more, so that share of the budget stays unplanned (the report shows it), except through
a domain alert, whose replacements go to the domain's classes that are still served.

**Algorithm 2, training feedback.** ``RUN/train/<arm>/feedback.json`` holds ``C_poor``,
the classes whose R@1 under the best model stayed below ``tau``; each gets
``per_class`` more images, spread evenly over its domains.

Both only *add* items (round > 0); the stage caps the number of rounds (``max_rounds``),
so the loop can never run forever.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atlantis.errors import DataError
from atlantis.plan.budget import proportional, water_fill
from atlantis.plan.schema import Alert, AllocationRow, PlanItem, RoundSummary

Cell = str | None
_NO_DOMAIN = {"", "none", "null", "any", "(none)"}  # how a filter may name "no domain"


class TargetStat(BaseModel):
    """Synthetic images of one class or domain: made (``total``) and kept by the filter."""

    model_config = ConfigDict(extra="ignore")  # the filter may report more (mean distance...)

    total: int = Field(ge=0)
    kept: int = Field(ge=0)
    kept_fraction: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _synthetic_is_total(cls, data: Any) -> Any:
        if isinstance(data, dict) and "total" not in data and "synthetic" in data:
            return {**data, "total": data["synthetic"]}
        return data


class FilterStats(BaseModel):
    """``RUN/filter/<arm>/stats.json`` (one delta; a sweep's summary is refused)."""

    model_config = ConfigDict(extra="ignore")

    per_class: dict[str, TargetStat]
    per_domain: dict[str, TargetStat] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _rows_to_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sweep" in data and "per_class" not in data:
            raise ValueError("this is a delta sweep's summary; filtering feedback needs the "
                             "stats of one delta: re-run the filter with a single delta")  # fmt: skip
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for field, key in (("per_class", "class"), ("per_domain", "domain")):
            rows = data.get(field)
            if isinstance(rows, list):
                out[field] = {row.get(key): row for row in rows if isinstance(row, dict)}
        return out


class TrainFeedback(BaseModel):
    """``RUN/train/<arm>/feedback.json`` (Algorithm 2's output)."""

    model_config = ConfigDict(extra="ignore")

    c_poor: list[str]
    per_class_r1: dict[str, float] = Field(default_factory=dict)
    k: int | None = None
    tau: float | None = None


def read_json_model(path: Path, model: type[BaseModel]) -> BaseModel:
    """Parse a feedback file; a bad one raises ``DataError`` naming the file and field."""
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DataError("feedback file is missing", path) from None
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg})", path) from None
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise DataError(f"unexpected shape for {model.__name__}: {problems}", path) from None


# -- Algorithm 1 ------------------------------------------------------------------------------


def filter_alerts(stats: FilterStats, tau_domain: float, tau_class: float,
                  exemptions: Sequence[str] = ()) -> list[Alert]:  # fmt: skip
    """Algorithm 1's alert list: domains first, then classes; exempt ones flagged."""
    alerts = []
    for kind, table, tau in (("domain", stats.per_domain, tau_domain),
                             ("class", stats.per_class, tau_class)):  # fmt: skip
        for name, s in table.items():
            if s.total == 0:
                continue
            removed = max(0, s.total - s.kept)
            frac = removed / s.total
            if frac > tau:
                msg = (f"{removed}/{s.total} ({frac:.0%}) of {kind} '{name}' filtered out "
                       f"> tau_{kind} {tau:g}")  # fmt: skip
                alerts.append(
                    Alert(
                        kind=kind,
                        target=name,
                        value=round(frac, 4),
                        threshold=tau,
                        removed=removed,
                        message=msg,
                    )
                )
    return [a.model_copy(update={"exempt": is_exempt(a, exemptions)}) for a in alerts]


def is_exempt(alert: Alert, exemptions: Sequence[str]) -> bool:
    keys = {e.strip().lower() for e in exemptions}
    name = alert.target.lower()
    return name in keys or f"{alert.kind}:{name}" in keys


def stop_classes(stats: FilterStats, history: Sequence[RoundSummary], max_kept: float,
                 after: int, min_images: int = 1) -> dict[str, str]:  # fmt: skip
    """Classes the source does not serve (see the module docstring), with the reason.

    ``history`` is the plan's rounds so far: a filter round before counts when it holds a
    class alert for the class with a filtered-out fraction of at least ``1 - max_kept``.
    A class with fewer than ``min_images`` images in the current stats is not judged."""
    if after <= 0:
        return {}
    earlier = [r for r in history if r.source == "filter"][-(after - 1) :] if after > 1 else []
    if len(earlier) < after - 1:
        return {}
    out = {}
    for name, s in stats.per_class.items():
        if s.total < max(min_images, 1) or s.kept > max_kept * s.total:
            continue
        if all(any(a.kind == "class" and a.target == name and a.value >= 1 - max_kept - 1e-9
                   for a in r.alerts) for r in earlier):  # fmt: skip
            out[name] = (f"{s.kept}/{s.total} ({s.kept / s.total:.0%}) of class '{name}' kept, "
                         f"at most plan.stop_kept_share {max_kept:g} in {after} filter "
                         f"result(s) in a row (plan.stop_after {after})")  # fmt: skip
    return out


def filter_rows(alerts: Sequence[Alert], items: Sequence[PlanItem],
                previous: Sequence[AllocationRow], cap: int,
                stopped: Collection[str] = ()) -> list[AllocationRow]:  # fmt: skip
    """The re-plan of Algorithm 1: only the alerted targets, replacing what was removed;
    never a ``stopped`` class (a domain alert goes to the domain's other classes)."""
    new_classes = {it.class_name for it in items if it.is_new_class}
    rows = []
    for a in alerts:
        if a.exempt or (a.kind == "class" and a.target in stopped):
            continue
        target = f"{a.kind}:{a.target}"
        already = sum(r.count for r in previous if r.target == target)
        n = min(cap, max(0, a.removed - already))
        if a.kind == "class":
            weights = Counter(it.domain for it in items if it.class_name == a.target) or {None: 1}
            split = {(a.target, d): k for d, k in proportional(n, weights).items()}
        else:
            dom = None if a.target.lower() in _NO_DOMAIN else a.target
            weights = Counter(it.class_name for it in items
                              if it.domain == dom and it.class_name not in stopped)  # fmt: skip
            split = {(c, dom): k for c, k in proportional(n, weights).items()}
        for (c, d), k in split.items():
            if k > 0:
                rows.append(
                    AllocationRow(
                        class_name=c,
                        domain=d,
                        count=k,
                        step="filter_feedback",
                        reason=f"filtering feedback: {a.message}",
                        is_new_class=c in new_classes,
                        target=target,
                    )
                )
    return rows


# -- Algorithm 2 ------------------------------------------------------------------------------


def poor_class_alerts(fb: TrainFeedback) -> list[Alert]:
    """C_poor as alerts, with the R@1 and threshold behind each."""
    tau = fb.tau if fb.tau is not None else float("nan")
    alerts = []
    for c in dict.fromkeys(fb.c_poor):
        r1 = fb.per_class_r1.get(c)
        msg = f"R@1 {r1:.2f} < tau {tau:g}" if r1 is not None else f"in C_poor (tau {tau:g})"
        alerts.append(Alert(kind="poor_class", target=c, value=r1 if r1 is not None else -1.0,
                            threshold=tau, message=msg))  # fmt: skip
    return alerts


def train_rows(
    alerts: Sequence[Alert],
    domains: Mapping[str, Sequence[Cell]],
    per_class: int,
    new_classes: Collection[str] = (),
) -> list[AllocationRow]:
    """The re-plan of Algorithm 2: ``per_class`` images per C_poor class, evenly over its
    domains (``domains[c]``; a class missing there is skipped by the caller)."""
    rows = []
    given: dict[Cell, int] = {}  # per domain: the odd image goes where fewest went so far
    for a in alerts:
        cells = list(domains.get(a.target) or [None])
        for d, k in water_fill(per_class, dict.fromkeys(cells, 0), given).items():
            if k > 0:
                rows.append(AllocationRow(class_name=a.target, domain=d, count=k,
                                          step="train_feedback",
                                          reason=f"training feedback: {a.message}",
                                          is_new_class=a.target in new_classes,
                                          target=f"poor_class:{a.target}"))  # fmt: skip
    return rows

"""The typed content of ``report.json``: everything the run report shows, as numbers.

The HTML page is for people; ``report.json`` holds the same numbers for scripts (tables in a
paper, regression checks across runs). The orchestrator fills a :class:`ReportData` from the
stage artifacts and both files are written from it, so they cannot disagree.

Conventions: retrieval metrics are fractions in [0, 1] (as ``atlantis.evaluation`` writes
them) under free-form keys (``"R@1"``, ``"R@10"``, ``"MAP@R"``...), so any number of arms,
seeds and cut-offs fit. Every optional section may be ``None`` (not run); the renderer then
says so instead of failing. Derived numbers (mean and std over seeds, per-class deltas vs the
baseline) are filled in on construction when left empty, so they are stored in the JSON too.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atlantis.errors import DataError
from atlantis.redact import write_redacted

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "AdversarialRow",
    "AdversarialTable",
    "ArmResult",
    "CostTable",
    "CostTerm",
    "Distribution",
    "FilterSummary",
    "GridImages",
    "InsightSummary",
    "MetricStat",
    "ReportData",
    "SeedResult",
    "SyntheticImages",
    "load_report_json",
    "metric_order",
    "per_class_deltas",
    "save_report_json",
    "summarize_seeds",
]

REPORT_SCHEMA_VERSION = 1
MAP_AT_R = "MAP@R"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InsightSummary(_Model):
    """What the Data Insight Generator found, and who wrote the prose (a model or rules)."""

    data_overview: str = ""
    under_represented: list[str] = Field(default_factory=list)
    scarce_cells: list[tuple[str, str]] = Field(default_factory=list)  # (class, domain)
    new_classes: list[str] = Field(default_factory=list)
    backend: str = "unknown"
    is_language_model: bool | None = None


class Distribution(_Model):
    """Training images per class (and per class x domain) of one arm, or of the real data.

    ``class_counts`` and ``class_domain_counts`` count everything the arm trains on (real
    plus kept synthetic); ``synthetic_counts`` is the kept synthetic part of each class.
    """

    class_counts: dict[str, int] = Field(default_factory=dict)
    class_domain_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    synthetic_counts: dict[str, int] = Field(default_factory=dict)


class SyntheticImages(_Model):
    """The arm's synthetic budget: asked for, produced, and left after the filter."""

    planned: int = 0
    generated: int = 0
    kept: int = 0


class SeedResult(_Model):
    """One training seed of one arm, evaluated on the real test split."""

    seed: int
    recall: dict[str, float] = Field(default_factory=dict)  # {"R@1": 0.68, "R@2": ...}
    map_at_r: float | None = None
    best_epoch: int | None = None
    val_r1: float | None = None  # the validation R@1 the checkpoint was selected on

    def metrics(self) -> dict[str, float]:
        """Recall@K plus MAP@R (when known) under one namespace of metric keys."""
        out = dict(self.recall)
        if self.map_at_r is not None:
            out[MAP_AT_R] = self.map_at_r
        return out


class MetricStat(_Model):
    """Mean and sample standard deviation (0 for one seed) over ``n`` seeds."""

    mean: float
    std: float
    n: int


class ArmResult(_Model):
    name: str
    description: str = ""
    synthetic_images: SyntheticImages = Field(default_factory=SyntheticImages)
    seeds: list[SeedResult] = Field(default_factory=list)
    summary: dict[str, MetricStat] = Field(default_factory=dict)  # filled from seeds if empty
    per_class_r1: dict[str, float] = Field(default_factory=dict)  # mean over seeds

    @model_validator(mode="after")
    def _fill_summary(self) -> ArmResult:
        if not self.summary and self.seeds:
            self.summary = summarize_seeds(self.seeds)
        return self


class GridImages(_Model):
    """Review images of one class: the filter stage's combined ``grid`` PNG (kept row above
    removed row), and/or individual ``kept`` / ``removed`` image paths. Relative paths are
    relative to the run folder."""

    grid: str | None = None
    kept: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class FilterSummary(_Model):
    """The ORDC filter of one arm: totals, why images went, and which classes lost most."""

    synthetic: int = 0
    kept: int = 0
    removed: int = 0
    removed_by_reason: dict[str, int] = Field(default_factory=dict)
    kept_fraction: dict[str, float | None] = Field(default_factory=dict)  # per class
    grids: dict[str, GridImages] = Field(default_factory=dict)  # per class


class AdversarialRow(_Model):
    """One PGD setting; ``eps`` and ``step_size`` are fractions of the [0, 1] pixel range."""

    steps: int
    eps: float
    step_size: float | None = None
    r1: dict[str, float] = Field(default_factory=dict)  # arm -> adversarial R@1


class AdversarialTable(_Model):
    queries: int = 0
    gallery: int = 0
    clean_r1: dict[str, float] = Field(default_factory=dict)  # arm -> R@1 without attack
    rows: list[AdversarialRow] = Field(default_factory=list)


class CostTerm(_Model):
    """One term of the supplement-J cost model: ``coefficient_s * count = seconds``."""

    name: str
    coefficient_s: float
    count: float = 1.0
    seconds: float
    share: float  # fraction of the total, in [0, 1]
    source: str = ""  # where the coefficient comes from (measured here, paper's A100 figure)


class CostTable(_Model):
    terms: list[CostTerm] = Field(default_factory=list)
    total_seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)


class ReportData(_Model):
    """The whole report. ``distributions`` is keyed ``"real"`` and by arm name."""

    schema_version: int = REPORT_SCHEMA_VERSION
    title: str = "ATLANTIS run report"
    created: str = ""  # ISO 8601 time
    run: str = ""  # the run folder; relative image paths resolve against it
    baseline: str = "baseline"  # the arm every delta is measured against
    config_summary: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)  # honest caveats, shown first
    insight: InsightSummary | None = None
    distributions: dict[str, Distribution] = Field(default_factory=dict)
    arms: list[ArmResult] = Field(default_factory=list)
    splits_evaluated: list[str] = Field(default_factory=list)
    synthetic_test: dict[str, dict[str, float]] | None = None  # arm -> metrics on X_s
    per_class_delta: dict[str, dict[str, float]] = Field(default_factory=dict)
    filter: dict[str, FilterSummary] = Field(default_factory=dict)
    adversarial: AdversarialTable | None = None
    cost: CostTable | None = None
    timings: dict[str, float] = Field(default_factory=dict)  # stage -> seconds

    @model_validator(mode="after")
    def _check_and_fill(self) -> ReportData:
        names = [a.name for a in self.arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"arms: names must be unique, {dup} appear more than once")
        if not self.per_class_delta:
            self.per_class_delta = per_class_deltas(self.arms, self.baseline)
        return self

    def arm(self, name: str) -> ArmResult | None:
        return next((a for a in self.arms if a.name == name), None)


def summarize_seeds(seeds: list[SeedResult]) -> dict[str, MetricStat]:
    """Mean and sample std per metric over the seeds that report it."""
    values: dict[str, list[float]] = {}
    for seed in seeds:
        for key, value in seed.metrics().items():
            values.setdefault(key, []).append(float(value))
    return {
        key: MetricStat(
            mean=statistics.fmean(v), std=statistics.stdev(v) if len(v) > 1 else 0.0, n=len(v)
        )
        for key, v in sorted(values.items(), key=lambda kv: _metric_key(kv[0]))
    }


def per_class_deltas(arms: list[ArmResult], baseline: str) -> dict[str, dict[str, float]]:
    """Arm -> class -> per-class R@1 minus the baseline's, over the classes both report."""
    base = next((a for a in arms if a.name == baseline), None)
    if base is None or not base.per_class_r1:
        return {}
    return {
        a.name: {
            c: v - base.per_class_r1[c] for c, v in a.per_class_r1.items() if c in base.per_class_r1
        }
        for a in arms
        if a.name != baseline and a.per_class_r1
    }


def _metric_key(name: str) -> tuple[int, float, str]:
    """Sort order: R@K by K, then MAP@R, then anything else by name."""
    if name.startswith("R@"):
        try:
            return (0, float(name[2:]), name)
        except ValueError:
            pass
    return (1 if name == MAP_AT_R else 2, 0.0, name)


def metric_order(names: Any) -> list[str]:
    """Distinct metric names in display order (R@1, R@2, ..., MAP@R, others)."""
    return sorted(dict.fromkeys(names), key=_metric_key)


def save_report_json(data: ReportData, path: Path | str) -> Path:
    """Write ``report.json`` atomically (a killed run never leaves half a file)."""
    out = Path(path)
    write_redacted(out, data.model_dump_json(indent=2) + "\n")
    return out


def load_report_json(path: Path | str) -> ReportData:
    """Read ``report.json``; a missing, malformed or foreign file raises :class:`DataError`."""
    src = Path(path)
    try:
        raw = json.loads(src.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no such report file; write it with save_report_json", src) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"not readable JSON ({exc}); regenerate the report", src) from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != REPORT_SCHEMA_VERSION:
        raise DataError(
            f"schema_version {version!r}, this version of atlantis reads "
            f"{REPORT_SCHEMA_VERSION}; regenerate the report",
            src,
        )
    try:
        return ReportData.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"not a valid report ({exc}); regenerate the report", src) from None

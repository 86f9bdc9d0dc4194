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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atlantis.errors import DataError
from atlantis.redact import write_redacted
from atlantis.report.fidelity import ArmFidelity

if TYPE_CHECKING:
    from atlantis.report.stats import PairedDifference

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "AdversarialRow",
    "AdversarialTable",
    "AffectedClasses",
    "ArmResult",
    "CostTable",
    "CostTerm",
    "Distribution",
    "FilterSummary",
    "GridImages",
    "Headroom",
    "HeadroomDiff",
    "InsightSummary",
    "MetricStat",
    "PairedInterval",
    "PairedStat",
    "ReportData",
    "SeedResult",
    "SyntheticImages",
    "affected_class_r1",
    "headroom",
    "load_report_json",
    "metric_order",
    "paired_comparisons",
    "per_class_deltas",
    "per_class_paired",
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
    """The arm's synthetic budget: asked for, produced, left after the filter, trained on.

    ``budget`` is the arm's whole budget (the plan may leave part of it unplanned: a reserve
    feedback rounds did not use); ``trained`` differs from ``kept`` when ``loop.match_kept``
    cut the arm; ``restored`` counts the real images the oracle arm put back.
    """

    budget: int | None = None
    planned: int = 0
    generated: int = 0
    kept: int = 0
    trained: int | None = None
    restored: int = 0


class SeedResult(_Model):
    """One training seed of one arm, evaluated on the real test split."""

    seed: int
    recall: dict[str, float] = Field(default_factory=dict)  # {"R@1": 0.68, "R@2": ...}
    map_at_r: float | None = None
    best_epoch: int | None = None
    val_r1: float | None = None  # the validation R@1 the checkpoint was selected on
    # Per-class test R@1 of this seed: what per-class paired intervals are computed from.
    per_class_r1: dict[str, float] = Field(default_factory=dict)
    # How much optimisation this seed got (train metrics.json; None when the stage predates it).
    optimizer_steps: int | None = None
    images_seen: int | None = None

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


class PairedInterval(_Model):
    """Mean of per-seed differences ``a - b`` with its 95 % Student t interval.

    ``lo`` / ``hi`` are ``None`` with one shared seed (no interval: the difference is one
    seed's noise as much as any effect); ``significant`` only when the interval excludes 0.
    """

    n: int
    mean: float
    lo: float | None = None
    hi: float | None = None
    confidence: float = 0.95
    significant: bool = False


class PairedStat(PairedInterval):
    """One metric of arm ``a`` minus arm ``b``, paired on the ``seeds`` both trained with."""

    a: str
    b: str
    metric: str
    seeds: list[int] = Field(default_factory=list)
    diffs: list[float] = Field(default_factory=list)  # a - b per seed, in ``seeds`` order


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
        if not self.per_class_r1:  # the mean over the seeds that report the class
            values: dict[str, list[float]] = {}
            for seed in self.seeds:
                for c, v in seed.per_class_r1.items():
                    values.setdefault(c, []).append(float(v))
            self.per_class_r1 = {c: statistics.fmean(v) for c, v in values.items()}
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


class AffectedClasses(_Model):
    """Test R@1 on the classes a scenario touched (or the insight flagged) and on the rest.

    A group's R@1 for one seed is the mean of that seed's per-class R@1 over the group's test
    classes (every class weighs the same, as in the per-class table); ``affected`` / ``rest``
    are then mean ± sample std of that over the arm's seeds. Per-class R@1 is measured on the
    *test* split: under ``zsl`` its classes are unseen and differ from the training classes a
    scenario touches, so ``applicable`` is False and ``note`` says why instead of a number.
    """

    source: Literal["scenario", "insight"]
    classes: list[str] = Field(default_factory=list)  # the touched / flagged training classes
    applicable: bool = True
    note: str = ""
    test_classes: list[str] = Field(default_factory=list)  # ``classes`` found in the test split
    n_rest: int = 0  # test classes outside ``classes``
    affected: dict[str, MetricStat] = Field(default_factory=dict)  # arm -> over seeds
    rest: dict[str, MetricStat] = Field(default_factory=dict)  # arm -> over seeds


class HeadroomDiff(_Model):
    """Oracle minus baseline R@1 on one group of classes (``overall`` or ``affected``).

    ``mean`` is the oracle's mean minus the baseline's. ``std`` is the sample std of the
    per-seed differences when at least two seeds are shared (the paired spread), otherwise
    ``sqrt(std_oracle**2 + std_baseline**2)``. ``paired`` is the paired interval
    (:mod:`atlantis.report.stats`) when seeds are shared. ``shares`` maps each augmented arm
    to ``(arm - baseline) / (oracle - baseline)``: the part of the headroom it recovers
    (None when there is no headroom to divide by: a ratio over seed noise means nothing).
    """

    mean: float
    std: float
    n: int  # paired seeds, or the fewer seeds of the two arms when none are shared
    paired: PairedInterval | None = None
    within_noise: bool | None = None  # None: one seed everywhere, the noise is unknown
    shares: dict[str, float | None] = Field(default_factory=dict)


class Headroom(_Model):
    """How much an ``oracle`` arm (the scenario's withheld real images restored) beats the
    baseline: the most any augmentation could recover, and what each arm recovered.

    ``rule`` says in words how ``within_noise`` was decided, so a reader of report.json need
    not guess: with paired seeds, the 95 % interval includes 0; with unpaired seeds,
    ``|headroom|`` is below the larger of the two arms' seed std; with one seed everywhere,
    undecided (``None``).
    """

    oracle: str = "oracle"
    baseline: str = "baseline"
    overall: HeadroomDiff
    affected: HeadroomDiff | None = None  # None without applicable affected-class metrics
    rule: str = ""
    # True: a positive headroom beyond the noise; False: within the noise or not positive
    # (this scenario cannot show an augmentation effect); None: one seed, undecided.
    has_headroom: bool | None = None


class CurvePoint(_Model):
    """One budget of one arm's curve: the budget, the images it trained on, its seeds."""

    budget: int  # synthetic images sourced (the nested prefix of the arm's sourcing)
    images: int | None = None  # synthetic images in the training set (after the filter)
    seeds: list[SeedResult] = Field(default_factory=list)
    r1: MetricStat | None = None  # filled from seeds

    @model_validator(mode="after")
    def _fill(self) -> CurvePoint:
        if self.r1 is None and self.seeds:
            self.r1 = summarize_seeds(self.seeds).get("R@1")
        return self


class EtaPoint(_Model):
    """eta at one targeted budget: the naive budget reaching targeted's R@1, over the budget.

    ``beyond``: the naive curve never reached it, so ``naive_budget`` is the largest naive
    budget measured and ``ratio`` a lower bound ("> ratio").
    """

    budget: int
    targeted_r1: float
    naive_budget: float
    ratio: float
    beyond: bool = False

    @property
    def text(self) -> str:
        return f"> {self.ratio:.2f}" if self.beyond else f"{self.ratio:.2f}"


class BudgetCurve(_Model):
    """R@1 against the synthetic-image budget per arm, and the measured efficiency gain eta."""

    baseline: MetricStat | None = None  # the curve's budget 0
    arms: dict[str, list[CurvePoint]] = Field(default_factory=dict)
    eta: list[EtaPoint] = Field(default_factory=list)
    match_kept: bool = False


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
    # Arm-vs-arm paired differences per metric (targeted - naive, targeted - baseline, ...).
    paired: list[PairedStat] = Field(default_factory=list)
    # Arm -> class -> paired R@1 difference vs the baseline (only with >= 2 shared seeds).
    per_class_paired: dict[str, dict[str, PairedInterval]] = Field(default_factory=dict)
    # R@1 on the classes the scenario touched (or the insight flagged) vs the rest, per arm.
    affected_classes: AffectedClasses | None = None
    # Oracle - baseline R@1 and each augmented arm's recovered share (runs with an oracle).
    headroom: Headroom | None = None
    # R@1 against the budget for the naive and the targeted arm, and eta (loop.budgets).
    budget_curve: BudgetCurve | None = None
    # Per augmented arm: did the source deliver the plan's class and domain (truth or proxy),
    # and the filter's keep/remove confusion (with truth also per filter rule: ``per_rule``).
    fidelity: dict[str, ArmFidelity] = Field(default_factory=dict)
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
        if not self.paired:
            self.paired = paired_comparisons(self.arms, self.baseline)
        if not self.per_class_paired:
            self.per_class_paired = per_class_paired(self.arms, self.baseline)
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


REFERENCE_ARMS = frozenset({"untrained"})  # rows that are not trained arms: never paired


def _interval(
    a: dict[int, float], b: dict[int, float]
) -> tuple[PairedInterval, PairedDifference] | None:
    """The paired interval of ``a - b`` (None when no seed is shared)."""
    from atlantis.report.stats import paired_difference

    if not set(a) & set(b):
        return None
    d = paired_difference(a, b)
    return PairedInterval(n=d.n, mean=d.mean, lo=d.lo, hi=d.hi, confidence=d.confidence,
                          significant=d.significant), d  # fmt: skip


def _pairs(arms: list[ArmResult], baseline: str) -> list[tuple[ArmResult, ArmResult]]:
    """targeted - naive first (the method's claim), then every arm - the baseline."""
    trained = [a for a in arms if a.name not in REFERENCE_ARMS and a.seeds]
    by_name = {a.name: a for a in trained}
    kind = {a.name: a.name.partition("/delta-")[0] for a in trained}
    out = []
    if "naive" in by_name:
        out += [(a, by_name["naive"]) for a in trained if kind[a.name] == "targeted"]
    if baseline in by_name:
        others = [a for a in trained if a.name != baseline]
        others.sort(key=lambda a: kind[a.name] != "targeted")  # stable: targeted ones first
        out += [(a, by_name[baseline]) for a in others]
    return out


def paired_comparisons(arms: list[ArmResult], baseline: str) -> list[PairedStat]:
    """Per-seed paired differences between arms, per metric both report on shared seeds.

    Arms share seeds (``train.seed + i``), so seed ``s`` of one arm is paired with seed ``s``
    of the other; seeds only one arm has are left out.
    """
    out = []
    for a, b in _pairs(arms, baseline):
        per_a = {s.seed: s.metrics() for s in a.seeds}
        per_b = {s.seed: s.metrics() for s in b.seeds}
        names = metric_order(k for m in [*per_a.values(), *per_b.values()] for k in m)
        for metric in names:
            va = {s: m[metric] for s, m in per_a.items() if metric in m}
            vb = {s: m[metric] for s, m in per_b.items() if metric in m}
            got = _interval(va, vb)
            if got is None:
                continue
            interval, d = got
            out.append(PairedStat(**interval.model_dump(), a=a.name, b=b.name, metric=metric,
                                  seeds=list(d.seeds), diffs=list(d.diffs)))  # fmt: skip
    return out


def per_class_paired(arms: list[ArmResult], baseline: str) -> dict[str, dict[str, PairedInterval]]:
    """Arm -> class -> paired per-class R@1 difference vs the baseline.

    Only where at least two seeds are shared and carry per-class R@1: one seed gives no
    interval, and storing a single difference again would add nothing to ``per_class_delta``.
    """
    base = next((a for a in arms if a.name == baseline), None)
    if base is None:
        return {}
    out: dict[str, dict[str, PairedInterval]] = {}
    for a, b in _pairs(arms, baseline):
        if b is not base:
            continue
        classes = sorted({c for s in a.seeds for c in s.per_class_r1})
        row = {}
        for c in classes:
            va = {s.seed: s.per_class_r1[c] for s in a.seeds if c in s.per_class_r1}
            vb = {s.seed: s.per_class_r1[c] for s in base.seeds if c in s.per_class_r1}
            if len(set(va) & set(vb)) >= 2 and (got := _interval(va, vb)) is not None:
                row[c] = got[0]
        if row:
            out[a.name] = row
    return out


ZSL_NOT_APPLICABLE = (
    "not applicable (zsl: the scenario touches training classes, the test split has other classes)"
)
ORACLE = "oracle"
RULE_PAIRED = "the oracle - baseline paired 95 % interval over shared seeds includes 0"
RULE_UNPAIRED = "|oracle - baseline| is below the larger of the two arms' seed std"
RULE_UNKNOWN = "one seed per arm: the seeds' noise is unknown, so no verdict"


def _group_stat(seeds: list[SeedResult], classes: set[str], inside: bool) -> dict[int, float]:
    """Seed -> mean per-class R@1 over the seed's test classes in (or outside) ``classes``."""
    out = {}
    for s in seeds:
        values = [v for c, v in s.per_class_r1.items() if (c in classes) == inside]
        if values:
            out[s.seed] = statistics.fmean(values)
    return out


def _stat(values: dict[int, float]) -> MetricStat:
    v = list(values.values())
    return MetricStat(mean=statistics.fmean(v), std=statistics.stdev(v) if len(v) > 1 else 0.0,
                      n=len(v))  # fmt: skip


def affected_class_r1(arms: list[ArmResult], classes: list[str],
                      source: Literal["scenario", "insight"], split: str) -> AffectedClasses:  # fmt: skip
    """Per arm, R@1 over the affected test classes and over the rest (see AffectedClasses).

    Under ``zsl`` nothing is computed: the numbers would be over test classes the scenario
    never touched, and an empty "affected" group would read as a measurement.
    """
    if split == "zsl":
        return AffectedClasses(source=source, classes=list(classes), applicable=False,
                               note=ZSL_NOT_APPLICABLE)  # fmt: skip
    wanted = set(classes)
    trained = [a for a in arms if a.name not in REFERENCE_ARMS and a.seeds]
    tested = {c for a in trained for s in a.seeds for c in s.per_class_r1}
    out = AffectedClasses(source=source, classes=list(classes),
                          test_classes=sorted(wanted & tested),
                          n_rest=len(tested - wanted))  # fmt: skip
    if not out.test_classes:
        out.applicable = False
        out.note = ("not applicable: none of these classes is in the test split's per-class "
                    "R@1")  # fmt: skip
        return out
    for a in trained:
        if inner := _group_stat(a.seeds, wanted, True):
            out.affected[a.name] = _stat(inner)
        if outer := _group_stat(a.seeds, wanted, False):
            out.rest[a.name] = _stat(outer)
    return out


def _headroom_diff(
    per_arm: dict[str, dict[int, float]], baseline: str, oracle: str
) -> HeadroomDiff | None:
    """Oracle - baseline on one group, with the noise verdict and each arm's share."""
    o, b = per_arm.get(oracle), per_arm.get(baseline)
    if not o or not b:
        return None
    so, sb = _stat(o), _stat(b)
    got = _interval(o, b)
    paired = got[0] if got is not None else None
    mean = so.mean - sb.mean
    within: bool | None
    if got is not None and got[1].n > 1:
        std, n, within = statistics.stdev(got[1].diffs), got[1].n, not got[1].significant
    else:
        std = (so.std**2 + sb.std**2) ** 0.5
        n = paired.n if paired is not None else min(so.n, sb.n)
        noise = max(so.std, sb.std) if max(so.n, sb.n) > 1 else None
        within = None if noise is None else abs(mean) < noise
    diff = HeadroomDiff(mean=mean, std=std, n=n, paired=paired, within_noise=within)
    for arm, values in per_arm.items():
        if arm in (baseline, oracle):
            continue
        usable = within is not True and mean > 0
        diff.shares[arm] = (_stat(values).mean - sb.mean) / mean if usable else None
    return diff


def headroom(arms: list[ArmResult], baseline: str = "baseline",
             affected: AffectedClasses | None = None, oracle: str = ORACLE) -> Headroom | None:  # fmt: skip
    """Oracle - baseline R@1, overall and on the affected classes; None without an oracle.

    The shares are over the mean R@1 of each arm (not per seed): a per-seed ratio divides by
    a per-seed headroom that can be 0 or negative. A headroom that is within the noise, or not
    positive, gets no share at all.
    """
    trained = [a for a in arms if a.name not in REFERENCE_ARMS and a.seeds]
    names = {a.name for a in trained}
    if oracle not in names or baseline not in names:
        return None
    overall = {a.name: {s.seed: s.recall["R@1"] for s in a.seeds if "R@1" in s.recall}
               for a in trained}  # fmt: skip
    diff = _headroom_diff(overall, baseline, oracle)
    if diff is None:
        return None
    group = None
    if affected is not None and affected.applicable:
        wanted = set(affected.classes)
        group = _headroom_diff(
            {a.name: _group_stat(a.seeds, wanted, True) for a in trained}, baseline, oracle
        )
    rule = (RULE_PAIRED if diff.paired is not None and diff.paired.lo is not None
            else RULE_UNKNOWN if diff.within_noise is None else RULE_UNPAIRED)  # fmt: skip
    has = (False if diff.mean <= 0 or diff.within_noise is True
           else None if diff.within_noise is None else True)  # fmt: skip
    return Headroom(oracle=oracle, baseline=baseline, overall=diff, affected=group, rule=rule,
                    has_headroom=has)  # fmt: skip


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

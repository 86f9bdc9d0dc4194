"""Scenarios: take something away from the training data, the way the paper's experiments do.

ATLANTIS is evaluated where the real training data lacks something augmentation can supply,
each setting built from a full dataset after the split (supplement E):

* ``class_imbalance``: kappa training classes cut to ``keep`` (default 2) real images each;
* ``domain_scarcity``: the images of chosen domains (e.g. CUB "swimming") dropped from all
  training classes or some of them (``keep`` of them per class may stay, default none);
* ``few_shot``: every training class cut to ``keep`` images.

Only *train* records are ever dropped: val selects models and test measures them, so both
stay the full sets of the no-scenario run and results stay comparable across scenarios.
Every choice (which classes, which images survive) is a keyed hash of (seed, kind, class,
record id) as in :mod:`atlantis.data.splits`: reproducible anywhere, independent of record
order, and nested (the images kept with ``keep=2`` are among those kept with ``keep=5``).
No scenario empties a training class: a class whose images would all go keeps one, so the
class set, and every later stage's idea of it, does not change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atlantis.data.records import ImageRecord
from atlantis.data.splits import _half_up
from atlantis.data.splits import _permute as permute
from atlantis.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

ScenarioKind = Literal["none", "class_imbalance", "domain_scarcity", "few_shot"]
KINDS: tuple[str, ...] = get_args(ScenarioKind)
DEFAULT_KEEP = {"class_imbalance": 2, "domain_scarcity": 0}
#: The optional fields each kind reads; setting another is a mistake worth an error.
FIELDS_OF = {
    "class_imbalance": ("classes", "n_classes", "keep"),
    "domain_scarcity": ("domains", "classes", "fraction", "keep"),
    "few_shot": ("keep",),
}
OPTIONAL = ("classes", "n_classes", "domains", "fraction", "keep")


class ScenarioConfig(BaseModel):
    """``data.scenario``: which scenario to build at ingest (``kind: none`` builds none).

    ``keep`` left unset means the kind's default (class_imbalance 2, domain_scarcity 0;
    few_shot has none and needs it). Under ``kind: none`` the other fields are ignored, so a
    scenario can be switched off without deleting it.
    """

    # Not a subclass of atlantis.config.Section: config.py imports this module.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: ScenarioKind = "none"
    classes: list[str] | None = None
    n_classes: int | None = Field(None, ge=1)
    domains: list[str] | None = None
    fraction: float | None = Field(None, gt=0, le=1)
    keep: int | None = Field(None, ge=0)
    seed: int = 0

    @field_validator("classes", "domains", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """Accept ``a,b`` from ``--set`` and numeric names; strip, de-duplicate, keep order."""
        if value is None:
            return None
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):  # YAML reads [1, 2] as numbers: names are strings
            value = [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                     for v in value]  # fmt: skip
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return value  # pydantic reports the type
        out = list(dict.fromkeys(v.strip() for v in value if v.strip()))
        if not out:
            raise ValueError("must list at least one name, or be left unset (null)")
        return out

    @model_validator(mode="after")
    def _fits_kind(self) -> ScenarioConfig:
        kind = self.kind
        if kind == "none":
            return self
        used = FIELDS_OF[kind]
        stray = [f for f in OPTIONAL if getattr(self, f) is not None and f not in used]
        if stray:
            raise ValueError(
                f"kind {kind!r} does not use {stray}; it reads {list(used)} and seed. Unset "
                f"them (e.g. --set data.scenario.{stray[0]}=null) or pick another kind: {KINDS}"
            )
        if kind == "class_imbalance" and (self.classes is None) == (self.n_classes is None):
            raise ValueError(
                "kind 'class_imbalance' needs exactly one of 'classes' (training class names) "
                "or 'n_classes' (kappa: how many training classes, chosen by seed)"
            )
        if kind == "domain_scarcity":
            if not self.domains:
                raise ValueError("kind 'domain_scarcity' needs 'domains': the domains to drop")
            if self.classes is not None and self.fraction is not None:
                raise ValueError(
                    "kind 'domain_scarcity' takes 'classes' or 'fraction' (or neither: all "
                    "training classes), not both"
                )
        if kind == "few_shot" and self.keep is None:
            raise ValueError("kind 'few_shot' needs 'keep': training images left per class")
        if kind != "domain_scarcity" and self.keep is not None and self.keep < 1:
            raise ValueError(f"'keep' must be at least 1 for kind {kind!r}, got {self.keep}")
        return self

    @property
    def keep_per_class(self) -> int:
        """``keep``, or the kind's default when unset."""
        return self.keep if self.keep is not None else DEFAULT_KEEP.get(self.kind, 0)


@dataclass(frozen=True)
class ScenarioResult:
    """Records split into kept and dropped (both in input order) and what was done, per class."""

    kept: list[ImageRecord]
    dropped: list[ImageRecord]
    summary: dict[str, Any]


def apply_scenario(records: list[ImageRecord], cfg: ScenarioConfig) -> ScenarioResult:
    """Drop training records as ``cfg`` says; records are returned, never modified."""
    if cfg.kind == "none":
        return ScenarioResult(list(records), [], {"kind": "none", "dropped_images": 0})
    train: dict[str, list[ImageRecord]] = defaultdict(list)  # first-appearance class order
    for rec in records:
        if rec.split == "train":
            train[rec.label].append(rec)
    if not train:
        raise DataError(f"scenario {cfg.kind!r}: there are no training records to restrict")
    keep = cfg.keep_per_class
    domains: list[str] = []
    if cfg.kind == "class_imbalance":
        targets = _targets(records, train, cfg, cfg.n_classes)
    elif cfg.kind == "few_shot":
        targets = list(train)
    else:
        domains = _check_domains(records, train, cfg)
        n = None if cfg.fraction is None else max(1, _half_up(cfg.fraction * len(train)))
        targets = _targets(records, train, cfg, n)

    drop_ids: set[str] = set()
    per_class: dict[str, dict[str, Any]] = {}
    short, floored = [], []
    for label in targets:
        recs = train[label]
        if cfg.kind == "domain_scarcity":
            hit = [r.id for r in recs if set(r.domains) & set(domains)]
            n_keep = keep if len(hit) < len(recs) else max(keep, 1)
            if n_keep > keep and len(hit) > keep:
                floored.append(label)
            why = f"in dropped domain(s) {domains}; kept {min(n_keep, len(hit))} of {len(hit)}"
        else:
            hit, n_keep = [r.id for r in recs], keep
            if len(recs) < keep:
                short.append(label)
            why = f"{cfg.kind}: restricted to {keep} training image(s)"
        gone = set(permute(hit, cfg.seed, f"scenario:{cfg.kind}:{label}")[n_keep:])
        drop_ids |= gone
        per_class[label] = {"train_images": len(recs), "kept": len(recs) - len(gone),
                            "dropped": len(gone), "why": why}  # fmt: skip

    kept = [r for r in records if r.id not in drop_ids]
    dropped = [r for r in records if r.id in drop_ids]
    single = [c for c, s in per_class.items() if s["kept"] == 1]
    _warn(cfg.kind, keep, short, single, floored)
    n_train = sum(len(v) for v in train.values())
    summary = {
        "kind": cfg.kind, "seed": cfg.seed, "keep": keep, "classes": targets, "domains": domains,
        "train_images_before": n_train, "train_images_after": n_train - len(dropped),
        "dropped_images": len(dropped), "per_class": per_class, "short_classes": short,
        "single_image_classes": single, "kept_to_avoid_empty_class": floored,
        "config": cfg.model_dump(mode="json"),
    }  # fmt: skip
    return ScenarioResult(kept, dropped, summary)


def _targets(
    records: list[ImageRecord],
    train: dict[str, list[ImageRecord]],
    cfg: ScenarioConfig,
    n: int | None,
) -> list[str]:
    """The training classes a scenario restricts, in dataset order: named, seeded or all."""
    names = list(train)
    if cfg.classes is not None:
        _check_classes(records, names, cfg.classes)
        chosen = set(cfg.classes)
    elif n is not None:
        if n > len(names):
            raise ConfigError(
                f"data.scenario.n_classes = {n}, but there are only {len(names)} training "
                f"classes; use at most {len(names)}"
            )
        chosen = set(permute(names, cfg.seed, f"scenario:{cfg.kind}:classes")[:n])
    else:
        return names
    return [c for c in names if c in chosen]


def _check_classes(records: list[ImageRecord], train: list[str], wanted: list[str]) -> None:
    some = f"{train[:8]}" + (f" ... ({len(train)} in all)" if len(train) > 8 else "")
    known = {r.label for r in records}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ConfigError(
            f"data.scenario.classes: unknown class(es) {unknown[:10]}; training classes: {some}"
        )
    elsewhere = [c for c in wanted if c not in set(train)]
    if elsewhere:
        raise ConfigError(
            f"data.scenario.classes: {elsewhere[:10]} have no training images under this "
            f"split (val or test classes, which a scenario never touches); training classes: "
            f"{some}"
        )


def _check_domains(
    records: list[ImageRecord], train: dict[str, list[ImageRecord]], cfg: ScenarioConfig
) -> list[str]:
    """The domains to drop, after checking the data has domain labels and knows them all."""
    assert cfg.domains
    all_domains = sorted({d for r in records for d in r.domains})
    if not all_domains:
        raise DataError(
            "scenario 'domain_scarcity' needs domain labels, and no record has any; use a "
            "dataset with domain labels (e.g. the manifest format's 'domain' column)"
        )
    unknown = [d for d in cfg.domains if d not in all_domains]
    if unknown:
        raise ConfigError(
            f"data.scenario.domains: unknown domain(s) {unknown}; the dataset's domains: "
            f"{all_domains[:30]}"
        )
    unlabelled = sum(1 for recs in train.values() for r in recs if not r.domains)
    if unlabelled:
        logger.warning(
            "domain_scarcity: %d training image(s) have no domain label; they are kept", unlabelled
        )
    in_train = {d for recs in train.values() for r in recs for d in r.domains}
    absent = [d for d in cfg.domains if d not in in_train]
    if absent:
        logger.warning("domain_scarcity: domain(s) %s have no training images to drop", absent)
    return list(cfg.domains)


def _warn(kind: str, keep: int, short: list[str], single: list[str], floored: list[str]) -> None:
    if short:
        logger.warning(
            "%s: %d class(es) already had fewer than %d training images (kept all): %s",
            kind, len(short), keep, short[:10],
        )  # fmt: skip
    if floored:
        logger.warning(
            "%s: %d class(es) have every training image in the dropped domains; one is kept so "
            "the class is not emptied: %s",
            kind, len(floored), floored[:10],
        )  # fmt: skip
    if single:
        logger.warning(
            "%s: %d class(es) are left with a single training image (no positive pair): %s",
            kind, len(single), single[:10],
        )  # fmt: skip

"""The filter stage: the rule(s) of ``filter.rule``, then diversity control, on one arm.

Reads ``RUN/generate/<arm>/records.jsonl`` (synthetic or retrieved records) and the real
*training* records of the ingest stage, embeds both with one embedder, and writes to
``RUN/filter/<arm>/`` (stage name ``filter/<arm>``, one manifest):

* ``kept.jsonl`` / ``removed.jsonl``: the synthetic records, each with
  ``meta["filter"] = {"reason", "rule", "removed_by", "verdicts", "delta", "distance",
  "ratio", "class_radius", ...}``. ``reason`` is one code (kept: ``inlier``, ``consistent``
  or ``new_class``; removed: the first removing rule's ``outlier`` / ``inconsistent`` /
  ``new_class``, or ``near_duplicate`` / ``near_duplicate_real`` with ``duplicate_of`` and
  ``similarity``); ``removed_by`` names every step that removed the image (rules of
  ``filter.rule``, or ``diversity``); ``verdicts`` gives each rule's own code, and the
  consistency rule adds ``best_other_class`` and ``margin`` (see ``filtering.rules``).
  ``distance`` and ``ratio`` (ORDC's, reported whatever the rule) are null for classes
  without real images; ``delta`` is a number, or ``"inf"`` (JSON has no infinity);
  ``radius_is_fallback`` marks a class whose radius was replaced (one real image, see
  ``filtering.ordc``); ``normalized`` says whether the rules measured L2-normalised vectors
  (``filter.normalize`` resolved: ``auto`` normalises unless the real vectors are unit
  length already; also in ``stats.json`` and the manifest's info).
* ``stats.json``: totals and per-class / per-domain kept fractions (the filtering feedback's
  input, see ``filtering.stats``) with removals by reason and by rule, the rule and its
  options, and each class's review grid ``grids/<class>.png``.

A delta *sweep* (``filter.delta`` a list) writes one such set per delta in
``filter/<arm>/delta-<d>/`` (e.g. ``delta-1.5``, ``delta-inf``) and a top-level
``stats.json`` comparing them; it is still one stage, so the images are embedded once.

Embeddings are cached by image content in ``RUN/cache/embeddings`` (shared with the embed
stage); real vectors come from ``RUN/embed/<embedder>`` when that stage ran with the same
embedder identity. Records are processed sorted by (plan id, id), so which copy of a near
duplicate survives does not depend on the order generation finished in.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.config import EmbedConfig
from atlantis.data.ingest import load_ingested
from atlantis.data.paths import image_paths
from atlantis.data.records import ImageRecord, read_records, write_records
from atlantis.embed.base import Embedder
from atlantis.embed.cache import EmbeddingCache
from atlantis.embed.stage import build_embedder, load_embeddings
from atlantis.embed.stage import stage_name as embed_stage_name
from atlantis.errors import ConfigError, StageError
from atlantis.filtering.config import RUNTIME_KEYS, FilterConfig, delta_tag
from atlantis.filtering.diversity import auto_threshold, diversity_keep
from atlantis.filtering.grids import write_class_grids
from atlantis.filtering.ordc import OrdcResult
from atlantis.filtering.rules import RuleInputs, apply_rules
from atlantis.filtering.stats import DIVERSITY, filter_stats, json_delta
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run, StageManifest

__all__ = [
    "filter_arm",
    "load_filter_stats",
    "load_kept",
    "load_removed",
    "resolve_embed_config",
    "stage_name",
]

EMBED_RUNTIME_KEYS = {"batch_size", "device", "num_workers"}


def stage_name(arm: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", arm):
        raise ConfigError(f"arm name {arm!r}: use letters, digits, '.', '_' or '-'")
    return f"filter/{arm}"


def resolve_embed_config(cfg: FilterConfig, embed_cfg: EmbedConfig) -> EmbedConfig:
    """The embedder of the rule: ``filter.embedder`` if set, else the run's ``embed`` one."""
    update: dict[str, Any] = {}
    if cfg.embedder is not None:
        update = {"embedder": cfg.embedder, "options": dict(cfg.embedder_options),
                  "image_size": None}  # fmt: skip
    if cfg.batch_size is not None:
        update["batch_size"] = cfg.batch_size
    if cfg.device is not None:
        update["device"] = cfg.device
    return embed_cfg.model_copy(update=update) if update else embed_cfg


def filter_arm(
    run: Run,
    cfg: FilterConfig,
    arm: str,
    embed_cfg: EmbedConfig,
    *,
    force: bool = False,
    progress: bool = True,
) -> StageManifest:
    """Run (or skip, when up to date) the filter stage of ``arm``."""
    name = stage_name(arm)
    generate = f"generate/{arm}"
    inputs = {"ingest": run.output_hash("ingest"), generate: run.output_hash(generate)}
    ecfg = resolve_embed_config(cfg, embed_cfg)
    config = {
        "filter": cfg.model_dump(mode="json", exclude=RUNTIME_KEYS),
        "embed": ecfg.model_dump(mode="json", exclude=EMBED_RUNTIME_KEYS),
    }
    with run.stage(name, config, inputs, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        synthetic = sorted(read_records(run.stage_dir(generate) / "records.jsonl"), key=_order)
        real = [r for r in load_ingested(run)[0] if r.split == "train"]
        with ctx.timer("embed_s"):
            real_x, syn_x, real_source, key = _embed(run, ecfg, real, synthetic, progress)
        _clear_outputs(ctx.dir)
        sweep = []
        for delta in cfg.deltas:
            folder = ctx.dir / delta_tag(delta) if cfg.is_sweep else ctx.dir
            with ctx.timer("filter_s"):
                kept, removed, stats = _filter(real, real_x, synthetic, syn_x, cfg, delta)
            stats = {"arm": arm, "delta": json_delta(delta), "embedder": ecfg.embedder,
                     "embedder_key": key, "real_embeddings": real_source, **stats}  # fmt: skip
            with ctx.timer("grids_s"):
                write_class_grids(run, folder, kept, removed, stats["per_class"],
                                  cfg.grid_per_class)  # fmt: skip
            for fname, recs in (("kept.jsonl", kept), ("removed.jsonl", removed)):
                write_records(ctx.add_output(folder / fname), recs)
            _write_json(ctx.add_output(folder / "stats.json"), stats)
            sweep.append({"delta": json_delta(delta), "folder": folder.name, **stats["totals"]})
            suffix = f"_{delta_tag(delta)}" if cfg.is_sweep else ""
            ctx.counts[f"kept{suffix}"] = len(kept)
            ctx.counts[f"removed{suffix}"] = len(removed)
            if not cfg.is_sweep:
                ctx.counts.update(stats["totals"]["removed_by_reason"])
        if cfg.is_sweep:
            _write_json(ctx.add_output(ctx.dir / "stats.json"), {"arm": arm, "sweep": sweep})
        ctx.counts.update(synthetic=len(synthetic), real=len(real))
        ctx.info.update(sweep=cfg.is_sweep, deltas=[delta_tag(d) for d in cfg.deltas],
                        embedder_key=key, real_embeddings=real_source,
                        normalized=stats["normalized"])  # fmt: skip
    return run.require(name)


def _order(rec: ImageRecord) -> tuple[str, str]:
    return (str(rec.meta.get("plan_id", "")), rec.id)


# ------------------------------------------------------------------------------ embedding


def _embed(
    run: Run, ecfg: EmbedConfig, real: list[ImageRecord], synthetic: list[ImageRecord],
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, str, str | None]:  # fmt: skip
    """(real vectors, synthetic vectors, where the real ones came from, embedder key)."""
    if not synthetic:  # nothing to filter: do not even build the model
        return np.zeros((len(real), 1), np.float32), np.zeros((0, 1), np.float32), "none", None
    embedder = build_embedder(ecfg)
    cache = EmbeddingCache(run.root / "cache" / "embeddings", embedder.key)
    real_x, source = _stage_vectors(run, ecfg.embedder, embedder, real)
    if real_x is None:
        real_x = embedder.embed_files(image_paths(run, real), cache=cache, progress=progress)
    syn_x = embedder.embed_files(image_paths(run, synthetic), cache=cache, progress=progress)
    return real_x, syn_x, source, embedder.key


def _stage_vectors(
    run: Run, spec: str, embedder: Embedder, real: list[ImageRecord]
) -> tuple[np.ndarray | None, str]:
    """The real vectors from a finished embed stage of the *same* embedder identity, if any.

    The embed folder is named by spec only; the key check makes sure that, e.g., an embed
    stage run at another image size is not mistaken for this one.
    """
    name = embed_stage_name(spec)
    m = run.read_manifest(name)
    if m is None or m.status != "done" or m.info.get("embedder_key") != embedder.key:
        return None, "cache"
    vectors, ids = load_embeddings(run, spec)
    row = {image_id: i for i, image_id in enumerate(ids)}
    if any(r.id not in row for r in real):
        return None, "cache"
    return vectors[[row[r.id] for r in real]], name


# ------------------------------------------------------------------------------ filtering


def _filter(
    real: list[ImageRecord], real_x: np.ndarray, synthetic: list[ImageRecord],
    syn_x: np.ndarray, cfg: FilterConfig, delta: float,
) -> tuple[list[ImageRecord], list[ImageRecord], dict[str, Any]]:  # fmt: skip
    """The rule(s) of ``filter.rule``, then diversity control over their survivors; records
    annotated in ``meta``."""
    if not synthetic:  # no vectors were computed (see ``_embed``): nothing to measure
        real, real_x = [], real_x[:0]
    inputs = RuleInputs(real_x, [r.label for r in real], syn_x, [r.label for r in synthetic],
                        cfg, delta)  # fmt: skip
    decision = apply_rules(inputs, cfg.rule)
    res = inputs.geometry  # the class table (radii) is reported whatever the rule
    keep = decision.keep.copy()
    reasons = [decision.reason(i) for i in range(len(synthetic))]
    removed_by = [decision.removed_by(i) for i in range(len(synthetic))]
    extra: dict[int, dict[str, Any]] = {}
    rows = np.flatnonzero(keep)
    threshold = cfg.dedup_threshold
    if threshold == "auto":
        threshold = auto_threshold(real_x)
    if threshold is not None and rows.size:
        against = cfg.dedup_against_real and len(real) > 0
        div = diversity_keep(
            syn_x[rows], [synthetic[i].label for i in rows], threshold,
            real_embeddings=real_x if against else None,
            real_labels=[r.label for r in real] if against else None, scope=cfg.dedup_scope,
        )  # fmt: skip
        _warn_if_most_are_duplicates(int((~div.keep).sum()), rows.size, threshold)
        for pos in np.flatnonzero(~div.keep):
            i, j = int(rows[pos]), int(div.duplicate_of[pos])
            keep[i] = False
            reasons[i] = div.reason(int(pos)) or ""
            removed_by[i] = [DIVERSITY]
            other = real[j] if div.of_real[pos] else synthetic[int(rows[j])]
            extra[i] = {"duplicate_of": other.id, "similarity": float(div.similarity[pos])}
    kept, removed = [], []
    for i, rec in enumerate(synthetic):
        info = {
            "reason": reasons[i],
            "rule": cfg.rule,
            "removed_by": removed_by[i],
            **decision.info(i),
            "delta": json_delta(delta),
            "distance": _num(res.distance[i]),
            "ratio": _num(res.ratio[i]),
            "class_radius": _class_radius(res, i),
            "radius_is_fallback": bool(res.fallback[i]),
            "normalized": res.normalized,
            **extra.get(i, {}),
        }
        out = rec.model_copy(update={"meta": {**rec.meta, "filter": info}})
        (kept if keep[i] else removed).append(out)
    stats = filter_stats(synthetic, keep, reasons, res, removed_by=removed_by)
    stats.update(rule=cfg.rule, rules=list(decision.names), rule_options=_rule_options(cfg),
                 pooled_radius=res.pooled_radius, normalized=res.normalized,
                 normalize_setting=cfg.normalize,
                 dedup_threshold=threshold, dedup_threshold_setting=cfg.dedup_threshold,
                 keep_new_classes=cfg.keep_new_classes)  # fmt: skip
    return kept, removed, stats


def _rule_options(cfg: FilterConfig) -> dict[str, Any]:
    """The ``radius_*`` / ``consistency_*`` keys of the rules in use (for ``stats.json``)."""
    data = cfg.model_dump(mode="json")
    return {k: v for k, v in data.items() if k.split("_")[0] in cfg.rules}


def _warn_if_most_are_duplicates(dropped: int, candidates: int, threshold: float) -> None:
    """Say so when diversity control, not ORDC, decides the outcome: a threshold problem."""
    if candidates >= 4 and dropped > candidates / 2:
        warnings.warn(
            f"diversity control removed {dropped} of the {candidates} images that passed ORDC "
            f"as near duplicates (cosine >= {threshold}); with this embedder, distinct images "
            "of one class may be that similar: check the grids and consider a higher "
            "filter.dedup_threshold",
            RuntimeWarning,
            stacklevel=3,
        )


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _class_radius(res: OrdcResult, i: int) -> float | None:
    c = int(res.class_index[i])
    return None if c < 0 else _num(res.radius[c])


# ------------------------------------------------------------------------------ outputs


def _clear_outputs(folder: Path) -> None:
    """Remove what an earlier run (another delta or sweep) left, so no stale set remains."""
    for name in ("kept.jsonl", "removed.jsonl", "stats.json"):
        (folder / name).unlink(missing_ok=True)
    for sub in [folder / "grids", *folder.glob("delta-*")]:
        if sub.is_dir():
            shutil.rmtree(sub)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


# ------------------------------------------------------------------------------ reading


def filter_result_dir(run: Run, arm: str, delta: float | None = None) -> Path:
    """The folder holding ``arm``'s kept / removed records and stats (one delta of a sweep)."""
    name = stage_name(arm)
    m = run.require(name)
    tags: Sequence[str] = m.info.get("deltas", [])
    want = None if delta is None else delta_tag(float(delta))
    if m.info.get("sweep"):
        if want not in tags:
            got = "no delta" if want is None else want
            raise StageError(f"{name} is a delta sweep ({', '.join(tags)}); {got} given: "
                             "pass one of those deltas")  # fmt: skip
        return run.stage_dir(name) / want  # type: ignore[operator]
    if want is not None and [want] != list(tags):
        raise StageError(f"{name} was filtered with {', '.join(tags)}, not {want}; re-run "
                         f"atlantis filter {run.root} --arm {arm} --delta {delta}")  # fmt: skip
    return run.stage_dir(name)


def load_kept(run: Run, arm: str, delta: float | None = None) -> list[ImageRecord]:
    """The kept synthetic records of ``arm`` (``delta`` picks one set of a sweep)."""
    return read_records(filter_result_dir(run, arm, delta) / "kept.jsonl")


def load_removed(run: Run, arm: str, delta: float | None = None) -> list[ImageRecord]:
    """The synthetic records the filter of ``arm`` removed (with kept: all it sourced)."""
    return read_records(filter_result_dir(run, arm, delta) / "removed.jsonl")


def load_filter_stats(run: Run, arm: str, delta: float | None = None) -> dict[str, Any]:
    """``stats.json`` of ``arm`` (per-class / per-domain kept fractions), for the feedback."""
    path = filter_result_dir(run, arm, delta) / "stats.json"
    return json.loads(path.read_text(encoding="utf-8"))

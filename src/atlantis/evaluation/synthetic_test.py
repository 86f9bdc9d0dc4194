"""Synthetic test sets X_s: generated images of the test classes, kept by ORDC, to evaluate on.

The paper evaluates each model on the real test set and on X_s, "images generated for the
test classes, ORDC-filtered against the real test-class centroids". ``build_synthetic_test``
makes it from three stages:

1. ``plan/testset`` (``atlantis.plan.testset``): ``per_class`` class-name prompts per test
   class, cycling through the class's test domains;
2. ``generate/testset``: the configured image source, exactly as for a training arm;
3. ``testset`` (this module): ORDC of those images against the *real test* images of their
   class, in the run's ``embed`` space (vectors through the run's embedding cache). Writes
   ``kept.jsonl`` / ``removed.jsonl`` (records with ``split="test"`` and
   ``meta["filter"]``: reason, delta, distance, ratio, class radius), ``stats.json``
   (per-class and per-domain kept fractions, as the filter stage writes them) and
   ``kept.npy`` (the kept images' vectors in that space, rows in ``kept.jsonl`` order).

``evaluate_synthetic_test(run, arm)`` then scores leave-one-out Recall@K (K = 1, 2, 4, 8
below the set's size) and MAP@R among the kept images with ``RUN/train/<arm>/best.pt`` and
the model's own distance, or with the untrained ``embed`` embedder (cosine) for
``arm=None``. Results are cached in ``RUN/testset/eval/<arm>.json`` (``untrained.json``),
keyed by the output hashes of the train stage and of X_s: a retrained model or a rebuilt X_s
is evaluated again, anything else is read back.

Only the ORDC rule filters X_s (no diversity control: X_s is a measuring set, and the paper
filters it by the centroid rule alone). The rule never sees a model trained on the test
classes: under zsl no model has, and the ``embed`` embedder is the untrained backbone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from atlantis.config import EmbedConfig
from atlantis.data.ingest import load_ingested
from atlantis.data.paths import image_paths
from atlantis.data.records import ImageRecord, read_records, write_records
from atlantis.embed.cache import EmbeddingCache
from atlantis.embed.stage import RUNTIME_KEYS as EMBED_RUNTIME_KEYS
from atlantis.embed.stage import build_embedder
from atlantis.errors import ConfigError, StageError
from atlantis.evaluation.recall import DEFAULT_KS, evaluate_retrieval
from atlantis.filtering.arrays import check_delta
from atlantis.filtering.ordc import ordc
from atlantis.filtering.stats import filter_stats, json_delta
from atlantis.generate.base import ImageSource
from atlantis.generate.config import GenerateConfig
from atlantis.generate.stage import generate, load_generated
from atlantis.plan.testset import ARM, PLAIN_TEMPLATE, TEMPLATE, plan_testset
from atlantis.store.atomic import atomic_save_npy, atomic_write_text
from atlantis.store.run import Run, StageManifest

__all__ = ["STAGE", "build_synthetic_test", "evaluate_synthetic_test", "filter_testset",
           "load_testset"]  # fmt: skip

STAGE = "testset"
UNTRAINED = "untrained"
_ARM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/delta-[A-Za-z0-9.]+)?")


def build_synthetic_test(
    run: Run, embed_cfg: EmbedConfig, gen_cfg: GenerateConfig, *, per_class: int,
    delta: float, seed: int = 0, progress: bool = True, normalize: bool | Literal["auto"] = "auto",
    template: str = TEMPLATE, plain_template: str = PLAIN_TEMPLATE,
    source: ImageSource | None = None, force: bool = False,
) -> StageManifest:  # fmt: skip
    """Plan, generate and ORDC-filter X_s; each of the three stages is skipped when up to date.

    ``delta``: the ORDC rule's knob (> 0, ``inf`` keeps all). ``source`` overrides the image
    source ``gen_cfg`` names (an ``ImageSource``, as ``generate`` takes). Raises
    ``StageError`` when fewer than 2 test classes keep an image (the stage is then marked
    failed, its files left for inspection).
    """
    try:
        delta = check_delta(delta)
    except ValueError as e:
        raise ConfigError(f"X_s: {e}") from None
    plan_testset(run, per_class, seed, template, plain_template=plain_template, force=force)
    generate(run, gen_cfg, ARM, progress=progress, source=source, force=force)
    gen = f"generate/{ARM}"
    inputs = {"ingest": run.output_hash("ingest"), gen: run.output_hash(gen)}
    embed = embed_cfg.model_dump(mode="json", exclude=EMBED_RUNTIME_KEYS)
    config = {"embed": embed, "delta": json_delta(delta), "normalize": normalize,
              "per_class": per_class, "seed": seed}  # fmt: skip
    with run.stage(STAGE, config, inputs, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        real = [r for r in load_ingested(run)[0] if r.split == "test"]
        synthetic = sorted(load_generated(run, ARM), key=_order)
        with ctx.timer("embed_s"):
            embedder = build_embedder(embed_cfg)
            cache = EmbeddingCache(run.root / "cache" / "embeddings", embedder.key)
            real_x = embedder.embed_files(image_paths(run, real), cache=cache, progress=progress)
            syn_x = (embedder.embed_files(image_paths(run, synthetic), cache=cache,
                                          progress=progress)
                     if synthetic else np.zeros((0, real_x.shape[1]), np.float32))  # fmt: skip
        with ctx.timer("filter_s"):
            kept, removed, stats, keep = filter_testset(
                [r.label for r in real], real_x, synthetic, syn_x, delta, normalize=normalize
            )
        failed = run.require(gen).counts.get("failed", 0)
        stats = {"delta": json_delta(delta), "embedder": embed_cfg.embedder,
                 "embedder_key": embedder.key, "generation_failed": failed, **stats}  # fmt: skip
        for fname, recs in (("kept.jsonl", kept), ("removed.jsonl", removed)):
            write_records(ctx.add_output(ctx.dir / fname), recs)
        atomic_write_text(ctx.add_output(ctx.dir / "stats.json"),
                          json.dumps(stats, indent=2, allow_nan=False) + "\n")  # fmt: skip
        atomic_save_npy(ctx.add_output(ctx.dir / "kept.npy"), syn_x[keep].astype(np.float32))
        classes = len({r.label for r in kept})
        ctx.counts.update(synthetic=len(synthetic), kept=len(kept), removed=len(removed),
                          kept_classes=classes, test_classes=len({r.label for r in real}),
                          real=len(real), generation_failed=failed)  # fmt: skip
        ctx.info.update(embedder_key=embedder.key, delta=json_delta(delta))
        _check_size(classes, len(kept), delta, per_class)
    return run.require(STAGE)


def filter_testset(
    real_labels: Sequence[str], real_x: np.ndarray, synthetic: Sequence[ImageRecord],
    syn_x: np.ndarray, delta: float, *, normalize: bool | Literal["auto"] = "auto",
) -> tuple[list[ImageRecord], list[ImageRecord], dict[str, Any], np.ndarray]:  # fmt: skip
    """ORDC of X_s against the real test images: (kept, removed, stats, keep mask).

    Records come back with ``split="test"`` (X_s is never training data) and
    ``meta["filter"]``. ``normalize="auto"`` measures on unit vectors unless the real ones
    are unit length already, as the filter stage does: the test images are embedded by a
    raw backbone, whose feature lengths would otherwise set the radii. An image whose class has no real test image cannot be placed and is
    removed (reason ``new_class``).
    """
    res = ordc(real_x, list(real_labels), syn_x, [r.label for r in synthetic], delta,
               keep_unknown_classes=False, normalize=normalize)  # fmt: skip
    kept, removed = [], []
    for i, rec in enumerate(synthetic):
        c = int(res.class_index[i])
        info = {"reason": str(res.reason[i]), "delta": json_delta(delta),
                "distance": _num(res.distance[i]), "ratio": _num(res.ratio[i]),
                "class_radius": None if c < 0 else _num(res.radius[c]),
                "radius_is_fallback": bool(res.fallback[i])}  # fmt: skip
        out = rec.model_copy(update={"split": "test", "meta": {**rec.meta, "filter": info}})
        (kept if res.keep[i] else removed).append(out)
    stats = filter_stats(list(synthetic), res.keep, list(res.reason), res)
    stats.update(normalized=bool(res.normalized), kept_classes=len({r.label for r in kept}))
    return kept, removed, stats, np.asarray(res.keep, dtype=bool)


def load_testset(run: Run) -> list[ImageRecord]:
    """The kept X_s records of a finished ``testset`` stage."""
    run.require(STAGE)
    return read_records(run.stage_dir(STAGE) / "kept.jsonl")


def evaluate_synthetic_test(
    run: Run, arm: str | None, *, device: str = "cpu", batch_size: int = 64,
    force: bool = False, progress: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Leave-one-out Recall@K and MAP@R on X_s of ``RUN/train/<arm>/best.pt`` (its own
    distance), or of the untrained ``embed`` embedder with cosine for ``arm=None``.

    ``arm`` may name one set of a delta sweep (``targeted/delta-1.5``). Cached in
    ``RUN/testset/eval/<arm>.json`` while the train stage and X_s are unchanged.
    """
    m = run.require(STAGE)
    kept = load_testset(run)
    labels = np.array([r.label for r in kept])
    _check_size(len(set(labels.tolist())), len(kept), m.config.get("delta"),
                m.config.get("per_class"))  # fmt: skip
    if arm is None:
        name, key = UNTRAINED, {"model": f"embed:{m.info.get('embedder_key')}"}
    else:
        if not _ARM.fullmatch(arm):
            raise ConfigError(f"arm {arm!r}: expected a name like 'targeted' or "
                              "'targeted/delta-1.5'")  # fmt: skip
        name, key = arm, {"model": f"train/{arm}", "train": run.output_hash(f"train/{arm}")}
    key["testset"] = str(m.output_hash)
    out = run.stage_dir(STAGE) / "eval" / f"{name}.json"
    if out.exists() and not force:
        cached = json.loads(out.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached
    if arm is None:
        vectors = np.load(run.stage_dir(STAGE) / "kept.npy")
        distance, curvature, model_name = "cosine", None, "untrained embed embedder"
    else:
        vectors, distance, curvature = _embed_with_model(run, arm, kept, device, batch_size,
                                                         progress)  # fmt: skip
        model_name = f"train/{arm}/best.pt"
    if len(vectors) != len(kept):
        raise StageError(f"{out.parent.parent}: {len(vectors)} vectors for {len(kept)} kept "
                         "images; rebuild X_s with force=True")  # fmt: skip
    ks = [k for k in DEFAULT_KS if k <= len(kept) - 1]
    extra = {} if curvature is None else {"curvature": curvature}
    metrics = evaluate_retrieval(vectors, labels, ks=ks, distance=distance, **extra)
    result = {"arm": arm, "model": model_name, "set": "X_s", "key": key,
              "images": len(kept), **metrics.to_dict()}  # fmt: skip
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result


def _embed_with_model(
    run: Run, arm: str, kept: list[ImageRecord], device: str, batch_size: int, progress: bool
) -> tuple[np.ndarray, str, float | None]:
    from atlantis.train.checkpoint import BEST, load_model
    from atlantis.train.inference import embed_paths

    model = load_model(run.stage_dir(f"train/{arm}") / BEST, device)
    vectors = embed_paths(model, image_paths(run, kept), batch_size=batch_size,
                          progress=progress, desc="embedding X_s")  # fmt: skip
    return vectors, model.distance, model.curvature or 0.1


def _check_size(classes: int, images: int, delta: Any, per_class: Any) -> None:
    if classes >= 2:
        return
    raise StageError(
        f"the synthetic test set X_s is too small to evaluate: {images} image(s) in {classes} "
        f"class(es) survived ORDC (delta={delta}), and retrieval needs 2 classes or more. "
        f"Make more images per class (per_class, now {per_class}) or filter less (a larger "
        "delta)"
    )


def _order(rec: ImageRecord) -> tuple[str, str]:
    return (str(rec.meta.get("plan_id", "")), rec.id)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None

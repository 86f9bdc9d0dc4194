"""The evaluate stage: Recall@K (+ MAP@R, per-class R@1) of an embedder on one split.

With no trained model this is the zero-training baseline: the chosen embedder's features
straight from the backbone. Output: ``RUN/evaluate/<embedder-slug>/metrics.json``.
"""

from __future__ import annotations

import json

import numpy as np

from atlantis.config import EmbedConfig, EvalConfig
from atlantis.data.ingest import load_ingested
from atlantis.embed.stage import embed, embedder_slug, load_embeddings, stage_name
from atlantis.errors import StageError
from atlantis.evaluation.recall import default_ks, evaluate_retrieval
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run


def resolve_distance(embed_cfg: EmbedConfig, cfg: EvalConfig) -> tuple[str, float]:
    """The distance (and Poincaré curvature) to compare ``embed_cfg``'s vectors with.

    Unset, it is the embedder's own: a checkpoint with a Poincaré head is compared on the
    ball with its curvature (cosine would rank its vectors differently), everything else
    with cosine. Reading it costs only the checkpoint's description, not a model load.
    """
    distance, curvature = cfg.distance, cfg.curvature
    if distance is None or curvature is None:
        from atlantis.embed.registry import create_embedder

        embedder = create_embedder(embed_cfg.embedder, **embed_cfg.options)
        distance = distance or getattr(embedder, "distance", "cosine")
        curvature = curvature or float(getattr(embedder, "curvature", 0.1) or 0.1)
    return distance, curvature


def evaluate(run: Run, embed_cfg: EmbedConfig, cfg: EvalConfig, *, force: bool = False,
             progress: bool = True) -> dict:  # fmt: skip
    """Embed if needed, then score retrieval on ``cfg.split``; returns the metrics dict."""
    embed(run, embed_cfg, progress=progress)
    name = f"evaluate/{embedder_slug(embed_cfg.embedder)}"
    inputs = {"embed": run.output_hash(stage_name(embed_cfg.embedder))}
    with run.stage(name, cfg, inputs, exclude={"memory_budget_mb"}, force=force) as ctx:
        if ctx.up_to_date:
            return json.loads((ctx.dir / "metrics.json").read_text(encoding="utf-8"))
        records, _ = load_ingested(run)
        vectors, ids = load_embeddings(run, embed_cfg.embedder)
        split_of = {r.id: r for r in records}
        rows = [i for i, rid in enumerate(ids) if split_of[rid].split == cfg.split]
        if len(rows) < 2:
            raise StageError(
                f"split '{cfg.split}' has {len(rows)} image(s); Recall@K needs at least 2. "
                "Choose another split with --split or re-ingest with more data"
            )
        labels = np.array([split_of[ids[i]].label for i in rows])
        ks = cfg.ks or list(default_ks(len(rows), len(set(labels.tolist()))))
        distance, curvature = resolve_distance(embed_cfg, cfg)
        with ctx.timer("search_s"):
            metrics = evaluate_retrieval(
                vectors[rows], labels, ks=ks, distance=distance,
                curvature=curvature, memory_budget_bytes=cfg.memory_budget_mb << 20,
            )  # fmt: skip
        result = {"split": cfg.split, "embedder": embed_cfg.embedder, "distance": distance,
                  **metrics.to_dict()}  # fmt: skip
        ctx.add_output(ctx.dir / "metrics.json")
        atomic_write_text(ctx.dir / "metrics.json", json.dumps(result, indent=2) + "\n")
        ctx.counts.update(queries=metrics.num_queries, classes=metrics.num_classes)
    return result

"""The embed stage: one embedding per ingested image, for one embedder.

Outputs (``RUN/embed/<embedder-slug>/``): ``embeddings.npy`` (float32 [N, D], rows in
record order) and ``ids.json`` (the record ids of those rows). Vectors are cached per image
content hash in ``RUN/cache/embeddings``, batch by batch, so a killed stage resumes with
only the missing images, and a second embedder run over the same images costs nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from atlantis.config import EmbedConfig
from atlantis.data.ingest import load_ingested
from atlantis.embed.cache import EmbeddingCache
from atlantis.embed.registry import create_embedder
from atlantis.errors import StageError
from atlantis.store.atomic import atomic_save_npy, atomic_write_text
from atlantis.store.run import Run, StageManifest

#: Options that change speed, not vectors: excluded from the stage's config hash.
RUNTIME_KEYS = {"batch_size", "device", "num_workers"}


def embedder_slug(spec: str) -> str:
    """A folder-safe name for an embedder spec (``timm:vit_small`` -> ``timm-vit_small``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-") or "embedder"


def stage_name(spec: str) -> str:
    return f"embed/{embedder_slug(spec)}"


def build_embedder(cfg: EmbedConfig):  # -> Embedder (import kept lazy for fast CLI start)
    options = dict(cfg.options)
    if cfg.image_size is not None:
        options.setdefault("image_size", cfg.image_size)
    return create_embedder(cfg.embedder, device=cfg.device, batch_size=cfg.batch_size,
                           num_workers=cfg.num_workers, **options)  # fmt: skip


def embed(
    run: Run, cfg: EmbedConfig, *, force: bool = False, progress: bool = True
) -> StageManifest:
    """Run (or skip, when up to date) the embed stage for ``cfg.embedder``."""
    name = stage_name(cfg.embedder)
    inputs = {"ingest": run.output_hash("ingest")}
    with run.stage(name, cfg, inputs, exclude=RUNTIME_KEYS, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        records, desc = load_ingested(run)
        root = Path(desc["root"])
        embedder = build_embedder(cfg)
        cache = EmbeddingCache(run.root / "cache" / "embeddings", embedder.key)
        cached_before = len(cache)
        with ctx.timer("embed_s"):
            vectors = embedder.embed_files([root / r.path for r in records], cache=cache,
                                           progress=progress)  # fmt: skip
        ctx.add_output(ctx.dir / "embeddings.npy")
        atomic_save_npy(ctx.dir / "embeddings.npy", vectors.astype(np.float32, copy=False))
        ctx.add_output(ctx.dir / "ids.json")
        atomic_write_text(ctx.dir / "ids.json", json.dumps([r.id for r in records]) + "\n")
        ctx.counts.update(images=len(records), dim=int(vectors.shape[1]),
                          computed=len(cache) - cached_before)  # fmt: skip
        ctx.info["embedder_key"] = embedder.key
        ctx.timings["per_image_s"] = ctx.timings["embed_s"] / max(1, ctx.counts["computed"])
    return run.require(name)


def load_embeddings(run: Run, spec: str) -> tuple[np.ndarray, list[str]]:
    """Embeddings and row ids of a finished embed stage."""
    name = stage_name(spec)
    run.require(name)
    folder = run.stage_dir(name)
    vectors = np.load(folder / "embeddings.npy")
    ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
    if len(ids) != len(vectors):
        raise StageError(
            f"{folder}: {len(vectors)} embeddings but {len(ids)} ids; re-run embed --force"
        )
    return vectors, ids

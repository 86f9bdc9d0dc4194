"""The ``attack`` stage: adversarial R@1 of each trained arm (supplement H, Table 5).

For every arm (``train/<arm>/best.pt``) and every cell ``(steps, eps)`` of the config's
grid, each query image of the test split is replaced by its PGD adversarial version
(``robustness.pgd``) and searched, by the model's own distance, among the *clean*
embeddings of all test images, leaving out its own clean image (leave-one-out, as in
``atlantis.evaluation``). R@1 is the share of queries whose nearest neighbour has their
label. The clean R@1 of the same queries against the same gallery is the reference.

Queries are every test image, or a seeded subset of ``max_queries`` (the gallery stays the
whole test split). Each query's random start is drawn from a generator seeded by
``(seed, image id)``: the same start in every cell and for every arm (the arms differ only
in their model), and independent of batching and of which subset was drawn.

Outputs (``RUN/attack/``):

* ``results.json``: ``{"queries", "gallery", "step_size_rule", "arms": {arm: {"clean_R@1",
  "distance", "curvature", "adversarial": [{"steps", "eps", "step_size", "R@1",
  "mean_embedding_shift"}, ...]}}}``; the shift is the mean model distance between a
  query's adversarial and clean embeddings;
* ``parts/<arm>-s<steps>-e<eps>.json``: one finished cell each, written atomically with a
  key of everything it depends on (model, queries, gallery, attack settings). A killed
  stage re-runs only the cells without a matching part; ``force`` deletes them all.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atlantis.data.ingest import load_ingested
from atlantis.embed.base import progress_bar, resolve_device
from atlantis.errors import ConfigError, StageError
from atlantis.robustness.config import RUNTIME_KEYS, AttackConfig, eps_tag
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run, StageManifest

__all__ = ["STAGE", "attack", "load_attack", "query_indices"]

STAGE = "attack"
RESULTS = "results.json"
PARTS = "parts"
PART_VERSION = 1
_ARM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def step_size_rule(cfg: AttackConfig) -> str:
    return "2.5 * eps / steps" if cfg.step_size is None else f"fixed {cfg.step_size:g}"


def resolved_step_size(cfg: AttackConfig, steps: int, eps: float) -> float:
    return cfg.step_size if cfg.step_size is not None else 2.5 * eps / steps


def _train_hash(run: Run, arm: str) -> str:
    """The output hash of ``train/<arm>``, or an error naming the command that trains it."""
    if not _ARM.fullmatch(arm):
        raise ConfigError(f"arm name {arm!r}: use letters, digits, '.', '_' or '-' (e.g. "
                          "baseline, targeted, targeted/delta-1.5)")  # fmt: skip
    name = f"train/{arm}"
    base = arm.split("/")[0]
    delta = f" --delta {arm.split('/')[1].removeprefix('delta-')}" if "/" in arm else ""
    m = run.read_manifest(name)
    if m is None or m.status != "done":
        state = "has not run" if m is None else f"is '{m.status}'"
        raise StageError(
            f"run {run.root}: stage '{name}' {state}; the attack needs its best.pt. "
            f"Train it with: atlantis train {run.root} --arm {base}{delta}"
        )
    best = run.stage_dir(name) / "best.pt"
    if not best.is_file():
        raise StageError(f"{best} is missing although stage '{name}' is done; train it again "
                         f"with: atlantis train {run.root} --arm {base}{delta} --force")  # fmt: skip
    return run.output_hash(name)


def query_indices(n: int, max_queries: int | None, seed: int) -> np.ndarray:
    """Sorted positions of the attacked queries among ``n`` test images (a seeded subset)."""
    if max_queries is None or max_queries >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_queries, replace=False))


def attack(run: Run, cfg: AttackConfig, arms: list[str], *, progress: bool = True,
           force: bool = False) -> StageManifest:  # fmt: skip
    """Run (or resume, or skip when up to date) the ``attack`` stage over ``arms``."""
    from atlantis.train.data import labelled_images

    arms = list(dict.fromkeys(arms))
    if not arms:
        raise ConfigError(f"no arm to attack; train one first: atlantis train {run.root} "
                          "--arm baseline")  # fmt: skip
    inputs = {"ingest": run.output_hash("ingest")}
    inputs.update({f"train/{arm}": _train_hash(run, arm) for arm in arms})
    config = {"attack": cfg.model_dump(mode="json", exclude=RUNTIME_KEYS), "arms": arms}
    with run.stage(STAGE, config, inputs, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        if force:
            shutil.rmtree(ctx.dir / PARTS, ignore_errors=True)
        test = [r for r in load_ingested(run)[0] if r.split == "test"]
        if len(test) < 2:
            raise StageError(f"run {run.root}: the test split has {len(test)} image(s); "
                             "leave-one-out R@1 needs at least 2. Re-ingest with a test "
                             "split")  # fmt: skip
        gallery = labelled_images(run, test)
        queries = query_indices(len(test), cfg.max_queries, cfg.seed)
        device = resolve_device(cfg.device)
        results: dict[str, Any] = {"queries": len(queries), "gallery": len(test),
                                   "step_size_rule": step_size_rule(cfg), "arms": {}}  # fmt: skip
        reused = 0
        with progress_bar(progress) as bar:
            for arm in arms:
                out, n_reused = _attack_arm(ctx, cfg, arm, gallery, queries, device, bar)
                results["arms"][arm] = out
                reused += n_reused
        atomic_write_text(ctx.add_output(ctx.dir / RESULTS), json.dumps(results, indent=2) + "\n")
        cells = len(cfg.steps) * len(cfg.eps)
        ctx.counts.update(queries=len(queries), gallery=len(test), arms=len(arms),
                          cells=cells * len(arms), cells_reused=reused)  # fmt: skip
        ctx.info.update(device=device, step_size_rule=step_size_rule(cfg))
    return run.require(STAGE)


def _attack_arm(ctx: Any, cfg: AttackConfig, arm: str, gallery: Any, queries: np.ndarray,
                device: str, bar: Any) -> tuple[dict[str, Any], int]:  # fmt: skip
    """Clean R@1 and every cell of one arm; returns (its results, cells reused from parts)."""
    from atlantis.train.checkpoint import BEST, load_model
    from atlantis.train.inference import embed_paths

    run: Run = ctx.run
    model = load_model(run.stage_dir(f"train/{arm}") / BEST, device)
    curvature = model.curvature or 0.1
    q_paths = [gallery.paths[i] for i in queries]
    with ctx.timer("embed_s"):
        gallery_x, source = _gallery_vectors(run, arm, model, gallery, cfg.batch_size)
        clean_q = embed_paths(model, q_paths, batch_size=cfg.batch_size)
    ctx.info.setdefault("gallery_source", {})[arm] = source
    clean_r1 = _recall_at_1(model, clean_q, gallery_x, queries, gallery.labels)
    out: dict[str, Any] = {"clean_R@1": clean_r1, "distance": model.distance,
                           "curvature": model.curvature, "adversarial": []}  # fmt: skip
    key_base = {"version": PART_VERSION, "model": ctx.input_hashes[f"train/{arm}"],
                "queries": _ids_hash([gallery.ids[i] for i in queries]),
                "gallery": _ids_hash(gallery.ids), "seed": cfg.seed}  # fmt: skip
    cells = [(s, e) for s in cfg.steps for e in cfg.eps]
    task = bar.add_task(f"attack {arm}", total=len(cells) * len(queries))
    reused = 0
    for steps, eps in cells:
        alpha = resolved_step_size(cfg, steps, eps)
        key = _key({**key_base, "steps": steps, "eps": eps, "step_size": alpha})
        path = ctx.dir / PARTS / f"{arm.replace('/', '__')}-s{steps}-{eps_tag(eps)}.json"
        part = _read_part(path, key)
        if part is None:
            with ctx.timer("attack_s"):
                adv = _adversarial_embeddings(model, q_paths, [gallery.ids[i] for i in queries],
                                              clean_q, cfg, steps, eps, alpha, bar,
                                              task)  # fmt: skip
            shift = _mean_shift(adv, clean_q, model.distance, curvature)
            r1 = _recall_at_1(model, adv, gallery_x, queries, gallery.labels)
            part = {"key": key, "arm": arm, "steps": steps, "eps": eps, "step_size": alpha,
                    "R@1": r1, "mean_embedding_shift": shift,
                    "queries": len(queries)}  # fmt: skip
            atomic_write_text(path, json.dumps(part, indent=2) + "\n")
        else:
            reused += 1
            bar.advance(task, len(queries))
        ctx.add_output(path)
        out["adversarial"].append({k: part[k] for k in ("steps", "eps", "step_size", "R@1",
                                                        "mean_embedding_shift")})  # fmt: skip
    return out, reused


def _gallery_vectors(run: Run, arm: str, model: Any, gallery: Any,
                     batch_size: int) -> tuple[np.ndarray, str]:  # fmt: skip
    """Clean test embeddings: the train stage's own when they cover the same images."""
    from atlantis.train.inference import embed_paths

    folder = run.stage_dir(f"train/{arm}") / "embeddings"
    vec_path, ids_path = folder / "test.npy", folder / "test_ids.json"
    if vec_path.exists() and ids_path.exists():
        ids = json.loads(ids_path.read_text(encoding="utf-8"))
        vectors = np.load(vec_path)
        if ids == gallery.ids and vectors.shape[0] == len(ids):
            return vectors.astype(np.float32, copy=False), f"train/{arm}/embeddings/test.npy"
    return embed_paths(model, gallery.paths, batch_size=batch_size), "computed"


def _adversarial_embeddings(model: Any, paths: list[Path], ids: list[str], clean: np.ndarray,
                            cfg: AttackConfig, steps: int, eps: float, alpha: float, bar: Any,
                            task: Any) -> np.ndarray:  # fmt: skip
    """PGD on every query, batch by batch; the embeddings of the adversarial images."""
    from torch.utils.data import DataLoader

    from atlantis.robustness.pgd import pgd_attack
    from atlantis.train.data import ImageDataset
    from atlantis.train.model import image_transforms

    transform = image_transforms(model.image_size, model.interpolation, train=False)
    loader = DataLoader(ImageDataset(paths, np.zeros(len(paths)), transform),
                        batch_size=cfg.batch_size)  # fmt: skip
    device = next(model.parameters()).device
    out, start = [], 0
    for pixels, _ in loader:
        stop = start + len(pixels)
        x = pixels.to(device).float() / 255
        noise = torch.stack([_random_start(cfg.seed, i, x.shape[1:]) for i in ids[start:stop]])
        anchor = torch.from_numpy(clean[start:stop]).to(device)
        adv = pgd_attack(model, x, eps=eps, steps=steps, step_size=alpha, start=noise,
                         clean_embeddings=anchor)  # fmt: skip
        with torch.inference_mode():
            out.append(model(adv).float().cpu())
        bar.advance(task, len(pixels))
        start = stop
    return torch.cat(out).numpy()


def _random_start(seed: int, image_id: str, shape: torch.Size) -> torch.Tensor:
    """One query's random start in [-1, 1], a function of ``(seed, image id)`` only."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.rand(tuple(shape), generator=generator) * 2 - 1


def _mean_shift(adv: np.ndarray, clean: np.ndarray, distance: str, curvature: float) -> float:
    from atlantis.robustness.pgd import embedding_distance

    d = embedding_distance(torch.from_numpy(adv), torch.from_numpy(clean), distance, curvature)
    return float(d.mean())


def _recall_at_1(model: Any, query_x: np.ndarray, gallery_x: np.ndarray, positions: np.ndarray,
                 labels: np.ndarray) -> float:  # fmt: skip
    """R@1 of queries (test positions ``positions``) against the clean test gallery.

    Leave-one-out by position: the two nearest gallery items are searched and the query's
    own clean image is dropped, so exact duplicates elsewhere remain legitimate neighbours.
    """
    from atlantis.evaluation.knn import knn

    idx, _ = knn(query_x, gallery_x, 2, model.distance, exclude_self=False,
                 curvature=model.curvature or 0.1)  # fmt: skip
    own = torch.from_numpy(positions).long()
    nearest = torch.where(idx[:, 0] == own, idx[:, 1], idx[:, 0]).numpy()
    return float(np.mean(labels[nearest] == labels[positions]))


def _ids_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def _key(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _read_part(path: Path, key: str) -> dict[str, Any] | None:
    """A finished cell with this key, or None (missing, stale or unreadable: run it again)."""
    try:
        part = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return part if isinstance(part, dict) and part.get("key") == key else None


def load_attack(run: Run) -> dict[str, Any]:
    """``results.json`` of the finished attack stage."""
    run.require(STAGE)
    return json.loads((run.stage_dir(STAGE) / RESULTS).read_text(encoding="utf-8"))

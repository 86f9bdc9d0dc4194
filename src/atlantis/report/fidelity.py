"""Source fidelity: are the images an arm sourced (and kept) what its plan asked for?

An arm's comparison means little if its images are not of the planned class: a targeted
plan served with wrong-class images tests the image source, not the targeting. Two ways
to measure it, each stated as what it is:

* **truth** (``loop.pool_truth``, ``atlantis.data.truth``): a retrieval pool's real class
  and domain per image. An image is *right* when its true class is the planned class and,
  when the plan named a domain, its true domain is that domain. Besides the shares of
  right images among those sourced and those kept, the filter's keep/remove decisions are
  scored against it (right images removed, wrong images kept), overall and per filter rule
  (``per_rule``: each rule of ``filter.rule`` alone, from the records' ``removed_by``).
* **proxy** (no truth, e.g. text-to-image): an image is counted class-right when the
  nearest real-class centroid, in the baseline arm's trained model (cosine), is its planned
  class. It says nothing about the domain, and it is the model's opinion, not the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from atlantis.data.records import ImageRecord
from atlantis.data.truth import TruthEntry, describe_missing, load_truth, missing_truth
from atlantis.store.run import Run

__all__ = ["ArmFidelity", "FidelityShare", "FilterConfusion", "arm_fidelity",
           "proxy_fidelity", "truth_fidelity"]  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FidelityShare(_Model):
    """Shares of ``n`` images whose class / domain / both are what the plan asked for.

    ``domain_match`` counts only images whose plan named a domain (None: none did, or the
    measure cannot see domains); ``both_match`` is class right and, where planned, domain
    right. None when ``n`` is 0.
    """

    n: int
    class_match: float | None = None
    domain_match: float | None = None
    both_match: float | None = None


class FilterConfusion(_Model):
    """The filter's decisions against right/wrong images: what it should keep / remove."""

    right_kept: int
    right_removed: int
    wrong_kept: int
    wrong_removed: int

    @property
    def keep_precision(self) -> float | None:
        """Share of the kept images that are right."""
        kept = self.right_kept + self.wrong_kept
        return self.right_kept / kept if kept else None

    @property
    def wrong_removed_share(self) -> float | None:
        """Share of the wrong images that the filter removed."""
        wrong = self.wrong_kept + self.wrong_removed
        return self.wrong_removed / wrong if wrong else None

    @property
    def right_removed_share(self) -> float | None:
        """Share of the right images that the filter removed (its cost)."""
        right = self.right_kept + self.right_removed
        return self.right_removed / right if right else None


class ArmFidelity(_Model):
    """One arm's fidelity: by ``basis`` (truth or proxy), of sourced and of kept images."""

    arm: str
    basis: Literal["truth", "proxy"]
    sourced: FidelityShare
    kept: FidelityShare
    confusion: FilterConfusion | None = None
    # Truth only: rule name -> that rule alone (an image counts as removed by the rule iff the
    # rule removed it, whatever the other rules or diversity control did). Under
    # ``filter.rule: both`` this compares the rules on one run. Empty when the records do not
    # say (filtered before rules were recorded) or there is no truth.
    per_rule: dict[str, FilterConfusion] = Field(default_factory=dict)
    unmatched: int = 0  # images that could not be judged (see ``note``)
    note: str = ""


def _share(flags: Sequence[tuple[bool, bool | None]]) -> FidelityShare:
    """``flags``: per image (class right, domain right or None when no domain was planned)."""
    n = len(flags)
    if not n:
        return FidelityShare(n=0)
    doms = [d for _, d in flags if d is not None]
    both = [c and (d is None or d) for c, d in flags]
    return FidelityShare(n=n, class_match=sum(c for c, _ in flags) / n,
                         domain_match=sum(doms) / len(doms) if doms else None,
                         both_match=sum(both) / n)  # fmt: skip


def _confusion(right: Sequence[bool], kept: Sequence[bool]) -> FilterConfusion:
    pairs = list(zip(right, kept, strict=True))
    return FilterConfusion(right_kept=sum(r and k for r, k in pairs),
                           right_removed=sum(r and not k for r, k in pairs),
                           wrong_kept=sum(not r and k for r, k in pairs),
                           wrong_removed=sum(not r and not k for r, k in pairs))  # fmt: skip


def pool_file(rec: ImageRecord) -> str | None:
    """The pool path a retrieved record came from (None: not retrieved from a pool)."""
    value = rec.provenance.params.get("pool_file")
    return value if isinstance(value, str) else None


def truth_fidelity(arm: str, kept: Sequence[ImageRecord], removed: Sequence[ImageRecord],
                   truth: dict[str, TruthEntry], truth_path: Path | None = None) -> ArmFidelity:  # fmt: skip
    """Fidelity of ``arm`` against the pool's truth; every sourced pool image must have a row.

    Records that did not come from a pool (no ``pool_file``) cannot be judged: counted in
    ``unmatched``.
    """
    sourced = [*kept, *removed]
    judged = [(r, i < len(kept)) for i, r in enumerate(sourced) if pool_file(r) is not None]
    missing = missing_truth(truth, [pool_file(r) for r, _ in judged])  # type: ignore[misc]
    if missing:
        raise describe_missing(missing, truth_path or Path("loop.pool_truth"))
    flags = []
    for rec, _ in judged:
        entry = truth[pool_file(rec)]  # type: ignore[index]
        planned = rec.domains[0] if rec.domains else None
        flags.append((entry.class_name == rec.label,
                      None if planned is None else entry.domain == planned))  # fmt: skip
    is_kept = [k for _, k in judged]
    right = [c and (d is None or d) for c, d in flags]
    unmatched = len(sourced) - len(judged)
    return ArmFidelity(
        arm=arm, basis="truth", sourced=_share(flags),
        kept=_share([f for f, k in zip(flags, is_kept, strict=True) if k]),
        confusion=_confusion(right, is_kept), unmatched=unmatched,
        per_rule=_per_rule([r for r, _ in judged], right),
        note=f"{unmatched} image(s) not from the pool could not be judged" if unmatched else "",
    )  # fmt: skip


def _per_rule(records: Sequence[ImageRecord],
              right: Sequence[bool]) -> dict[str, FilterConfusion]:  # fmt: skip
    """Each filter rule's own confusion, from ``meta["filter"]``: ``verdicts`` (the rules that
    judged the image) and ``removed_by`` (those that removed it); {} if any record lacks them."""
    infos = [r.meta.get("filter") for r in records]
    if not infos or not all(isinstance(i, dict) and "verdicts" in i for i in infos):
        return {}
    removed_by = [set(i.get("removed_by") or []) for i in infos]  # type: ignore[union-attr]
    names = dict.fromkeys(n for i in infos for n in i["verdicts"])  # type: ignore[index]
    return {n: _confusion(right, [n not in by for by in removed_by]) for n in names}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def proxy_fidelity(arm: str, sourced_x: np.ndarray, sourced_labels: Sequence[str],
                   kept_mask: Sequence[bool], real_x: np.ndarray,
                   real_labels: Sequence[str]) -> ArmFidelity:  # fmt: skip
    """Fidelity by the nearest real-class centroid (cosine) instead of the truth.

    Images of planned classes without real images (new classes) cannot be judged: counted in
    ``unmatched``. The confusion uses the same notion of right, so it scores the filter
    against the baseline model's opinion.
    """
    classes = sorted(set(real_labels))
    labels = np.asarray(list(real_labels))
    real = _unit(real_x)
    centroids = _unit(np.stack([real[labels == c].mean(axis=0) for c in classes]))
    known = [i for i, lab in enumerate(sourced_labels) if lab in set(classes)]
    flags, is_kept = [], []
    if known:
        nearest = np.argmax(_unit(np.asarray(sourced_x)[known]) @ centroids.T, axis=1)
        for j, i in enumerate(known):
            flags.append((classes[int(nearest[j])] == sourced_labels[i], None))
            is_kept.append(bool(kept_mask[i]))
    unmatched = len(sourced_labels) - len(known)
    note = ("proxy: class judged by the nearest real-class centroid in the baseline model's "
            "space (cosine); the domain is not judged")  # fmt: skip
    if unmatched:
        note += f"; {unmatched} image(s) of classes without real images not judged"
    return ArmFidelity(
        arm=arm, basis="proxy", sourced=_share(flags),
        kept=_share([f for f, k in zip(flags, is_kept, strict=True) if k]),
        confusion=_confusion([c for c, _ in flags], is_kept), unmatched=unmatched, note=note,
    )  # fmt: skip


def _baseline_space(run: Run, records: list[ImageRecord],
                    progress: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """(sourced vectors, real training vectors, their labels) in ``train/baseline``'s model."""
    import json

    from atlantis.config import EmbedConfig
    from atlantis.data.ingest import load_ingested
    from atlantis.data.paths import image_paths
    from atlantis.embed.cache import EmbeddingCache
    from atlantis.embed.stage import build_embedder

    folder = run.stage_dir("train/baseline")
    real_x = np.load(folder / "embeddings" / "train.npy")
    ids = json.loads((folder / "embeddings" / "train_ids.json").read_text(encoding="utf-8"))
    label = {r.id: r.label for r in load_ingested(run)[0]}
    embedder = build_embedder(EmbedConfig(embedder=f"checkpoint:{folder}"))
    cache = EmbeddingCache(run.root / "cache" / "embeddings", embedder.key)
    syn_x = embedder.embed_files(image_paths(run, records), cache=cache, progress=progress)
    return syn_x, real_x, [label[i] for i in ids]


def arm_fidelity(run: Run, arm: str, *, truth_path: Path | None, pool: Path | None,
                 progress: bool = False) -> ArmFidelity | None:  # fmt: skip
    """The fidelity of ``arm``'s filtered images: by truth when ``truth_path`` is given, else
    the proxy when the baseline arm has trained; None when neither can be measured (or the
    arm's filter has not run)."""
    from atlantis.filtering.stage import load_kept, load_removed

    m = run.read_manifest(f"filter/{arm}")
    if m is None or m.status != "done":
        return None
    kept, removed = load_kept(run, arm), load_removed(run, arm)
    if truth_path is not None:
        return truth_fidelity(arm, kept, removed, load_truth(truth_path, pool), truth_path)
    base = run.read_manifest("train/baseline")
    if base is None or base.status != "done" or not (kept or removed):
        return None
    sourced = [*kept, *removed]
    syn_x, real_x, real_labels = _baseline_space(run, sourced, progress)
    mask = [True] * len(kept) + [False] * len(removed)
    return proxy_fidelity(arm, syn_x, [r.label for r in sourced], mask, real_x, real_labels)

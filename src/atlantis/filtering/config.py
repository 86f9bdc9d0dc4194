"""The ``filter`` section of a run's config: ORDC's delta, the embedder, diversity control.

Like ``CaptionConfig`` it does not subclass ``atlantis.config.Section``: ``atlantis.config``
imports the stage sections to build ``AtlantisConfig``, so importing it back would be
circular. The model config is the same (unknown keys fail, assignments are validated).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atlantis.filtering.arrays import check_delta

#: Keys that change speed, not results: excluded from the stage's config hash.
RUNTIME_KEYS = {"batch_size", "device"}


class FilterConfig(BaseModel):
    """ORDC (outlier removal) then diversity control, on one arm's synthetic images.

    ``delta``: keep a synthetic image of class c iff its distance to the centroid of the real
    images of c is at most ``delta`` x their mean distance to it (paper: 1 for CUB, 1.5 for
    Cars; ``inf`` keeps everything). A list is a sweep: one filtered set per delta, in
    ``filter/<arm>/delta-<d>/``.

    ``embedder``: the embedding space of the rule. ``None`` uses the run's ``embed`` section
    (the offline backbone); the paper uses the real-data baseline model, which becomes an
    embedder spec (e.g. a checkpoint path) once training exists. ``embedder_options`` go to
    its constructor when ``embedder`` is set. ``normalize`` L2-normalises embeddings first
    (off: the paper's raw embeddings, already unit length for its model).

    ``dedup_threshold``: cosine similarity at or above which a kept synthetic image is a near
    duplicate (``None`` turns diversity control off). ``"auto"`` (default) derives it from
    the real data in the filter's own embedding space (``diversity.auto_threshold``): how
    similar two *distinct* real images get depends on the embedder (EfficientNet features
    of two different emoji often reach 0.98 cosine, CLIP's of two photos rarely 0.9), so no
    single number is right for all; ``dedup_against_real`` also drops
    synthetic copies of real images; ``dedup_scope`` compares within a class or across all.
    ``grid_per_class``: thumbnails per row of the per-class review grid (0: no grids).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    delta: float | list[float] = 1.5
    embedder: str | None = None
    embedder_options: dict[str, Any] = Field(default_factory=dict)
    normalize: bool = False
    keep_new_classes: bool = True
    dedup_threshold: float | Literal["auto"] | None = "auto"
    dedup_against_real: bool = True
    dedup_scope: Literal["class", "all"] = "class"
    grid_per_class: int = Field(8, ge=0, le=64)
    # runtime (not hashed): None = the embed section's value
    batch_size: int | None = Field(None, gt=0)
    device: str | None = None

    @field_validator("dedup_threshold")
    @classmethod
    def _check_threshold(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, (int, float)) and not 0 < v <= 1:
            raise ValueError(f"dedup_threshold must be in (0, 1], 'auto' or null; got {v}")
        return v

    @field_validator("delta")
    @classmethod
    def _check_delta(cls, v: float | list[float]) -> float | list[float]:
        if isinstance(v, list):
            if not v:
                raise ValueError("delta list is empty; give one value or several for a sweep")
            values = sorted({check_delta(d) for d in v})
            tags = [delta_tag(d) for d in values]
            if len(set(tags)) < len(tags):
                raise ValueError(f"deltas {values} give clashing folder names {tags}")
            return values[0] if len(values) == 1 else values
        return check_delta(v)

    @property
    def deltas(self) -> list[float]:
        """The delta values, ascending (one for a plain run)."""
        return list(self.delta) if isinstance(self.delta, list) else [self.delta]

    @property
    def is_sweep(self) -> bool:
        return isinstance(self.delta, list)


def delta_tag(delta: float) -> str:
    """Folder-safe name of a delta: ``1`` -> ``delta-1``, ``1.5`` -> ``delta-1.5``, ``inf``."""
    return "delta-inf" if math.isinf(delta) else f"delta-{delta:g}"

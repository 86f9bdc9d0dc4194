"""The ``generate`` section of a run's config: which image source, its options, how to run it.

Like ``CaptionConfig`` it does not subclass ``atlantis.config.Section``: ``atlantis.config``
imports this module to build ``AtlantisConfig``, and importing it back would be circular.
The model config is the same (unknown keys fail, assignments are validated).

Which keys count: the source, its options, ``dtype`` and ``max_retries`` change the images
(or which plan items end up failed), so they are part of the stage's config hash. The batch
size, the executor, the Ray cluster and the device only change speed: they are
``RUNTIME_KEYS``, excluded from the hash, so moving a half-finished run from a laptop to a
Ray cluster resumes it instead of starting over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Keys that change speed, not images: excluded from the stage's config hash.
RUNTIME_KEYS = {"batch_size", "executor", "ray", "device"}

DEFAULT_SOURCE = "diffusers:stabilityai/sdxl-turbo"


class RayOptions(BaseModel):
    """Where and how wide ``executor: ray`` runs (one model copy per actor)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: ``None`` starts (and afterwards stops) a local Ray; ``"auto"`` or ``ray://host:10001``
    #: joins a running cluster.
    address: str | None = None
    num_actors: int = Field(1, ge=1)
    num_gpus_per_actor: float = Field(1.0, ge=0)
    num_cpus_per_actor: float = Field(1.0, gt=0)


class GenerateConfig(BaseModel):
    """The image source (``atlantis sources`` lists them) and how to run it.

    ``source`` is ``diffusers:<hub id or local folder>`` (text-to-image, optionally img2img
    from a real image of the class) or ``retrieve`` (real images picked from a pool by text
    similarity). ``options`` go to the source's constructor, e.g. ``{"steps": 4,
    "guidance": 0.0}`` or ``{"pool": "/data/pool", "captions": "/data/pool/captions.jsonl"}``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    source: str = DEFAULT_SOURCE
    options: dict[str, Any] = Field(default_factory=dict)
    #: Images per pipeline call; halved on CUDA out-of-memory (the smaller size sticks).
    batch_size: int = Field(8, gt=0)
    executor: Literal["local", "ray"] = "local"
    ray: RayOptions = Field(default_factory=RayOptions)
    #: New seeds tried for an image that came out NaN, black or flagged, before giving up.
    max_retries: int = Field(2, ge=0)
    device: str = "auto"
    #: ``auto``: the model family's half precision on CUDA (bfloat16 for FLUX and SD3 where the
    #: GPU has it, else float16), float32 elsewhere.
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"

    def pool_folder(self) -> Path | None:
        """The retrieval pool's folder (``options.pool``); None when the source is not retrieval."""
        pool = self.options.get("pool") if self.source == "retrieve" else None
        return Path(pool).expanduser() if pool else None

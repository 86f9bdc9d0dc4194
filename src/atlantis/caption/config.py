"""The ``caption`` section of a run's config: which captioner, its options, how to run it.

It does not subclass ``atlantis.config.Section`` on purpose: ``atlantis.config`` imports this
module to build ``AtlantisConfig``, and importing it back would be a circular import. The
model config is the same (unknown keys fail, assignments are validated).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Keys that change speed, not captions: excluded from the stage's config hash.
RUNTIME_KEYS = {"batch_size", "device"}


class CaptionConfig(BaseModel):
    """The captioner (``atlantis captioners`` lists the names) and how to run it.

    ``options`` go to the captioner's constructor, e.g. ``{"prompt": "a photo of"}`` for
    ``transformers:``, ``{"base_url": ..., "api_key_env": ...}`` for ``openai:``, or
    ``{"fallback": "tags"}`` for ``metadata``. ``splits`` are the splits whose images are
    captioned: the insight stage reads only the training captions, so the default captions
    nothing else (``["all"]`` captions every split, e.g. to inspect test captions).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    captioner: str = "metadata"
    options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(8, gt=0)
    device: str = "cpu"
    splits: list[str] = Field(default_factory=lambda: ["train"], min_length=1)

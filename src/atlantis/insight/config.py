"""The ``insight`` section of a run's config: which LLM backend, and the DIG's knobs.

Like ``CaptionConfig`` it does not subclass ``atlantis.config.Section``: ``atlantis.config``
imports this module to build ``AtlantisConfig``, so importing it back would be circular.
The model config is the same (unknown keys fail, assignments are validated).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InsightConfig(BaseModel):
    """The Data Insight Generator: LLM backend and the sizes of what it reports.

    ``llm`` names a backend (``rules`` is the offline deterministic stand-in, not a model;
    ``openai``, ``transformers`` are models); ``llm_options`` go to its constructor, e.g.
    ``{"model": "gpt-4o-mini", "base_url": ..., "api_key_env": "OPENAI_API_KEY"}``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    llm: str = "rules"
    llm_options: dict[str, Any] = Field(default_factory=dict)
    # FrequencyEval
    tagger: str = "auto"  # auto (spaCy if installed, else wordnet), wordnet, spacy[:<model>]
    top_n: int = Field(50, gt=0)
    per_class_top_n: int = Field(10, gt=0)
    # DomainInfer and assignment
    n_domains: int = Field(3, gt=0)
    embedding_assign: bool = False  # MiniLM text similarity for captions no keyword matches
    scarce_fraction: float = Field(0.5, gt=0, le=1)  # a cell below this share of expected
    # ClassInfer
    under_threshold: int | None = Field(None, gt=0)  # None: half the median class size
    infer_classes: bool = False  # propose classes from captions even when labels exist
    n_inferred_classes: int = Field(20, gt=0)
    # NewClassSearch
    n_new_classes: int = Field(10, ge=0)
    # Detectors: names to run (None: all) and per-detector options
    detectors: list[str] | None = None
    detector_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

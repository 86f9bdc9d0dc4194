"""Image sources by name: ``create_source("diffusers:<id or folder>")`` or ``"retrieve"``.

Specs:

* ``diffusers:<hub id or local folder>``: any text-to-image pipeline that
  ``diffusers.AutoPipelineForText2Image`` loads (SDXL base, SDXL Turbo, SD 1.5 / 2.x...),
  optionally img2img from a real image of the class (extra 'diffusers');
* ``retrieve``: real images picked from a user-supplied pool by similarity to each
  description and to the item's real reference images (Geng et al.'s retrieval baseline,
  reference-guided; the offline demo's source; extra 'text').

The factories import their backend module only when called, so listing sources imports
neither torch nor diffusers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atlantis.errors import ConfigError
from atlantis.generate.base import ImageSource
from atlantis.generate.config import GenerateConfig
from atlantis.registry import Registry, UnknownNameError

SOURCES = Registry[ImageSource]("image source")

#: Registered names used as ``<backend>:<model>`` (the others are complete names).
BACKENDS_WITH_MODEL = frozenset({"diffusers"})


@SOURCES.register(
    "diffusers",
    help="diffusers:<hub id or folder>: text-to-image (SDXL, SDXL Turbo, SD 1.5/2.x), "
    "img2img from a real image with img2img=true (extra 'diffusers'); options steps, "
    "guidance, width, height, negative_prompt, scheduler, local_files_only",
)
def _diffusers(model: str, **options: Any) -> ImageSource:
    from atlantis.generate.diffusers_source import DiffusersSource

    return DiffusersSource(model, **options)


@SOURCES.register(
    "retrieve",
    help="real images from a pool folder, best match per item to its text and its real "
    "reference images, none used twice (extra 'text'); options pool, captions, only_captioned, "
    "captioner, clip, text_weight, reference_weight, image_embedder, pool_leaks",
)
def _retrieve(**options: Any) -> ImageSource:
    from atlantis.generate.retrieve_source import RetrieveSource

    options.pop("dtype", None)  # no generative model: precision does not apply
    options.pop("max_retries", None)
    return RetrieveSource(**options)


def create_source(spec: str, **options: Any) -> ImageSource:
    """Build the source named by ``spec``; ``options`` go to its constructor.

    Common options: ``device`` ("cpu", "cuda", "auto") and ``cache_dir``. Construction is
    cheap: models load on first use.
    """
    name, sep, model = spec.strip().partition(":")
    try:
        factory = SOURCES.get(name)
    except UnknownNameError as exc:
        raise ConfigError(f"{exc}; model backends take the form '<backend>:<model>'") from None
    takes_model = name.lower() in BACKENDS_WITH_MODEL
    if takes_model and not model:
        raise ConfigError(
            f"image source {name!r} needs a model: '{name}:<hub id or folder>' (spec was {spec!r})"
        )
    if sep and not takes_model:
        raise ConfigError(f"image source {name!r} takes no ':<model>' part (spec was {spec!r})")
    try:
        return factory(model, **options) if takes_model else factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ConfigError(f"unknown option for image source {spec!r}: {exc}") from None


def build_source(cfg: GenerateConfig, cache_dir: Path | str | None = None) -> ImageSource:
    """The source a ``generate`` config describes (``cache_dir``: where it may keep caches)."""
    return create_source(cfg.source, device=cfg.device, dtype=cfg.dtype,
                         max_retries=cfg.max_retries, cache_dir=cache_dir,
                         **cfg.options)  # fmt: skip


def list_sources() -> dict[str, str]:
    """Registered names -> one-line help (``<backend>:`` entries take a model name)."""
    return {
        (f"{name}:<model>" if name in BACKENDS_WITH_MODEL else name): help_
        for name, help_ in SOURCES.describe().items()
    }

"""What a diffusers model family wants by default: steps, guidance, half precision, call options.

A wrong default here does not fail, it wastes or ruins: FLUX.1-schnell is distilled for 4
steps (30 cost 7x for no gain), SD3's guidance sits near 4 (7.5 burns colours), and FLUX and
SD3.5's T5 overflow to NaN images in float16. So ``diffusers:<model>`` picks a preset by the
model's *family* and *variant*, and every explicit option still wins.

The family comes from the pipeline class in a local folder's ``model_index.json`` (the
truth), else from the hub id's name. FLUX.1's variant comes from its transformer config
where the folder has one: ``guidance_embeds`` true is a guidance-distilled model (dev:
embedded guidance 3.5, 28 steps), false is the timestep-distilled schnell (4 steps, no
guidance); a hub id is judged by its name ("schnell"). Presets are a list of small entries
tried in order, so adding a family is one entry, not a branch in the source.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Pipeline class name prefix -> family (longest prefix first: SD3 and SDXL before SD).
_CLASS_FAMILIES = (
    ("Flux", "flux"),
    ("StableDiffusion3", "sd3"),
    ("StableDiffusionXL", "sdxl"),
    ("StableDiffusion", "sd"),
)
#: Hub-name fragments -> family, for ids that cannot be read offline.
_NAME_FAMILIES = (
    ("flux", "flux"),
    ("stable-diffusion-3", "sd3"),
    ("sd3", "sd3"),
    ("xl", "sdxl"),
    ("stable-diffusion", "sd"),
    ("sd-turbo", "sd"),
)


@dataclass(frozen=True)
class ModelFacts:
    """What is known about a model before loading it: its family, name and variant hints."""

    name: str  # the hub id or folder path, lower-cased
    family: str  # flux | sd3 | sdxl | sd | other
    guidance_embeds: bool | None = None  # FLUX: read from transformer/config.json if present


@dataclass(frozen=True)
class Preset:
    """Defaults for one family/variant. ``half`` is the 16-bit dtype it runs in on a GPU."""

    name: str
    matches: Callable[[ModelFacts], bool]
    steps: int
    guidance: float
    half: str = "float16"
    call: dict[str, Any] = field(default_factory=dict)  # extra pipeline call arguments
    why: str = ""


# Matchers are module-level functions, not lambdas, so a source holding its preset pickles
# (Ray ships sources to its actors).


def _flux_schnell(f: ModelFacts) -> bool:
    if f.family != "flux":
        return False
    if f.guidance_embeds is not None:
        return not f.guidance_embeds
    return "schnell" in f.name


def _flux(f: ModelFacts) -> bool:
    return f.family == "flux"


def _sd3_turbo(f: ModelFacts) -> bool:
    return f.family == "sd3" and "turbo" in f.name


def _sd3(f: ModelFacts) -> bool:
    return f.family == "sd3"


def _turbo(f: ModelFacts) -> bool:
    return "turbo" in f.name


def _any(f: ModelFacts) -> bool:
    return True


PRESETS: tuple[Preset, ...] = (
    Preset("flux-schnell", _flux_schnell, 4, 0.0,
           half="bfloat16", call={"max_sequence_length": 256},
           why="timestep-distilled for 1-4 steps, no guidance; T5 prompt cap 256 tokens"),
    Preset("flux-dev", _flux, 28, 3.5, half="bfloat16",
           call={"max_sequence_length": 512},
           why="guidance-distilled: 3.5 is embedded guidance, not CFG"),
    Preset("sd3-turbo", _sd3_turbo, 4, 0.0,
           half="bfloat16", why="SD3.5 Large Turbo: distilled for 4 steps, no guidance"),
    Preset("sd3", _sd3, 28, 4.5, half="bfloat16",
           why="SD3/3.5 model cards use 28-40 steps at guidance 3.5-4.5; T5 NaNs in fp16"),
    Preset("turbo", _turbo, 4, 0.0,
           why="SDXL Turbo / SD Turbo: adversarially distilled, 1-4 steps, no CFG"),
    Preset("default", _any, 30, 7.5, why="SD 1.x/2.x and SDXL base (the paper's)"),
)  # fmt: skip


def facts(model: str, folder: Path | None) -> ModelFacts:
    """The family (and FLUX variant) of ``model``: from its folder's files when local."""
    name = model.lower()
    family, guidance_embeds = None, None
    if folder is not None:
        index = _read_json(folder / "model_index.json")
        cls = str(index.get("_class_name", ""))
        family = next((fam for prefix, fam in _CLASS_FAMILIES if cls.startswith(prefix)), None)
        if family == "flux":
            value = _read_json(folder / "transformer" / "config.json").get("guidance_embeds")
            guidance_embeds = None if value is None else bool(value)
        family = family or ("other" if cls else None)
    if family is None:
        family = next((fam for frag, fam in _NAME_FAMILIES if frag in name), "other")
    return ModelFacts(name=name, family=family, guidance_embeds=guidance_embeds)


def preset_for(model_facts: ModelFacts) -> Preset:
    """The first preset that matches (``default`` matches everything)."""
    return next(p for p in PRESETS if p.matches(model_facts))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

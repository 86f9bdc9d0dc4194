"""Pydantic configs, loaded from YAML with ``--set key=value`` overrides.

Every section forbids unknown keys: a misspelt option fails at load time with the list of
valid keys instead of being silently ignored. The resolved config (file + overrides +
defaults) is written into the run folder, so a run always says how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
)

from atlantis import redact
from atlantis.caption.config import CaptionConfig
from atlantis.data.scenarios import ScenarioConfig
from atlantis.errors import ConfigError
from atlantis.filtering.config import FilterConfig
from atlantis.generate.config import GenerateConfig
from atlantis.insight.config import InsightConfig
from atlantis.pipeline.config import LoopConfig
from atlantis.plan.config import PlanConfig
from atlantis.robustness.config import AttackConfig
from atlantis.train.config import TrainConfig, with_preset


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HfOptions(Section):
    """Columns (and splits) of a ``--format hf`` dataset; None: found by name, if unambiguous.

    The defaults look for ``image``, ``label``, ``caption`` and ``domain``, then for common
    other names (``img``, ``image_path``, ``labels``, ``class``, ``fine_label``, ...); set a
    column here when the data names it otherwise. ``split``: the named splits to read
    (comma-separated, e.g. ``train,test``); None reads them all.
    """

    image_column: str | None = None
    label_column: str | None = None
    caption_column: str | None = None
    domain_column: str | None = None
    split: str | None = None


class DataConfig(Section):
    """Where the images are and how they are split."""

    format: str = "imagefolder"
    root: str | None = None
    split: Literal["zsl", "fsl"] = "zsl"
    val_fraction: float = Field(0.1, ge=0.0, lt=0.5)
    seed: int = 0
    skip_bad: bool = False
    verify_images: bool = True
    scenario: ScenarioConfig = Field(default_factory=ScenarioConfig)
    hf: HfOptions = Field(default_factory=HfOptions)

    @model_serializer(mode="wrap")
    def _hf_only_when_used(self, handler: Any) -> Any:
        # Unused default hf options stay out of the dump, so the config hash of runs made
        # before ``hf`` existed is unchanged (their ingest stays up to date).
        data = handler(self)
        if isinstance(data, dict) and self.format.lower() != "hf" and self.hf == HfOptions():
            data.pop("hf", None)
        return data


class EmbedConfig(Section):
    """The image embedder (``atlantis embedders`` lists the names) and how to run it."""

    embedder: str = "efficientnet-lite0"
    image_size: int | None = Field(None, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(32, gt=0)
    device: str = "cpu"
    num_workers: int = Field(0, ge=0)


class EvalConfig(Section):
    """Retrieval evaluation: Recall@K over one split, leave-one-out."""

    split: Literal["train", "val", "test"] = "test"
    ks: list[int] | None = None  # None: 1,2,4,8, or 1,10,100,1000 for SOP-like sets
    # None: the embedder's own distance (a trained Poincaré head's ``poincare`` and its
    # curvature; ``cosine`` for feature extractors); set it to compare another way.
    distance: Literal["cosine", "euclidean", "poincare"] | None = None
    curvature: float | None = Field(None, gt=0)
    memory_budget_mb: int = Field(256, gt=0)

    @field_validator("ks")
    @classmethod
    def _positive(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(k < 1 for k in v)):
            raise ValueError("ks must be a non-empty list of positive integers, e.g. [1, 2, 4, 8]")
        return sorted(set(v)) if v else v


class AtlantisConfig(Section):
    """The whole configuration of a run."""

    data: DataConfig = Field(default_factory=DataConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    insight: InsightConfig = Field(default_factory=InsightConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_valid_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


def _explain(err: ValidationError, source: str) -> ConfigError:
    lines = []
    for e in err.errors():
        key = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            section = ".".join(str(x) for x in e["loc"][:-1])
            valid = [k for k in _valid_keys(AtlantisConfig) if k.startswith(section)]
            lines.append(f"unknown key '{key}'; valid keys: {', '.join(valid)}")
        else:
            got = f"(got {e.get('input')!r})"
            lines.append(f"'{key}': {e['msg']}" + ("" if got in e["msg"] else f" {got}"))
    if len(lines) == 1:  # one problem: one line (greppable; the CLI's one error line)
        return ConfigError(f"{source}: invalid config: {lines[0]}")
    return ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines))


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value), the value parsed as YAML (so 3, true, [1,2] work)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set embed.batch_size=64")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: '{p}' is a value, not a section")
            node = nxt
        node[parts[-1]] = value
    return data


#: Sections where ``preset: NAME`` stands for a whole recipe, and what expands it.
PRESET_SECTIONS = {"train": with_preset}


def expand_presets(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Each section's ``preset: NAME`` replaced by the preset's keys, the section's own on top.

    Done per layer (saved config, file, ``--set``), so a preset named in a later layer
    overrides the keys of the earlier ones, as any other key of that layer does.
    """
    out = dict(data)
    for section, expand in PRESET_SECTIONS.items():
        if isinstance(out.get(section), dict) and "preset" in out[section]:
            try:
                out[section] = expand(out[section])
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
    return out


def apply_layered_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``apply_overrides``, where ``--set SECTION.preset=NAME`` lays the preset down there."""
    for item in overrides:
        parts, value = parse_override(item)
        if len(parts) == 2 and parts[1] == "preset" and parts[0] in PRESET_SECTIONS:
            data = _deep_merge(data, expand_presets({parts[0]: {"preset": value}}, f"--set {item}"))
        else:
            data = apply_overrides(data, [item])
    return data


def load_config(
    path: Path | str | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> AtlantisConfig:
    """Defaults <- ``base`` (e.g. a run's saved config) <- YAML file <- ``--set`` overrides."""
    data: dict[str, Any] = expand_presets(dict(base or {}), "the run's saved config")
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = _deep_merge(data, expand_presets(loaded, str(path)))
    data = apply_layered_overrides(data, list(overrides or []))
    try:
        return AtlantisConfig.model_validate(data)
    except ValidationError as e:
        raise _explain(e, source) from None


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def save_config(config: AtlantisConfig, path: Path | str) -> None:
    """Write the resolved config, secrets replaced by a placeholder (``atlantis.redact``):
    header values and anything a configured key variable holds never reach the run folder."""
    data = config.model_dump(mode="json")
    redact.register(redact.config_secrets(data))
    redact.write_redacted(path, yaml.safe_dump(redact.redact_config(data), sort_keys=False))

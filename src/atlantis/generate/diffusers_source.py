"""Text-to-image with diffusers: ``diffusers:<hub id or local folder>``.

Any pipeline ``AutoPipelineForText2Image`` can load works: SDXL base 1.0 (the paper's
model, ~30 s per image on an A100 at fp32), SDXL Turbo (guidance 0, 1-4 steps, ~8 s), SD 1.5
and 2.x. With ``img2img=true`` an item that names real reference images starts from the
first one (``AutoPipelineForImage2Image``, ``strength``), as ALIA edits real images; items
without one (new classes) fall back to text-to-image.

Reproducibility: every item gets its own ``torch.Generator`` seeded by its plan seed, so
its starting noise does not depend on which other items share its batch (pixels can still
differ in the last float bit between batch sizes, i.e. by at most one grey level).

Failures handled per item, not per stage: an image with NaN pixels (fp16 overflow) or
all black (the safety checker's answer) is retried with a new derived seed up to
``max_retries`` times, then reported as a failure. CUDA out-of-memory propagates to the
executor, which halves the batch.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from atlantis.data.images import open_image
from atlantis.embed.base import import_optional
from atlantis.embed.cache import weights_fingerprint
from atlantis.embed.preprocess import to_rgb
from atlantis.errors import AtlantisError, ConfigError
from atlantis.generate.base import ImageSource, PlanItem, SourceResult, derive_seed

#: Bump when the way images are made changes, so stored images are not reused.
KEY_VERSION = 1
#: An image whose brightest pixel is below this (of 1.0) counts as all black.
BLACK_LEVEL = 4 / 255
#: Defaults by model family, matched on the lower-cased model name (explicit options win).
PRESETS: dict[str, dict[str, Any]] = {
    "turbo": {"steps": 4, "guidance": 0.0},  # SDXL Turbo / SD Turbo: distilled, no CFG
}
DEFAULTS: dict[str, Any] = {"steps": 30, "guidance": 7.5}
_DTYPES = {"float32", "float16", "bfloat16"}


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()


class DiffusersSource(ImageSource):
    """A diffusers text-to-image pipeline (img2img from a real image when asked)."""

    model_attrs = ("_pipe", "_i2i")

    def __init__(
        self,
        model: str,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        negative_prompt: str | None = None,
        scheduler: str | None = None,
        img2img: bool = False,
        strength: float = 0.6,
        local_files_only: bool = False,
        revision: str | None = None,
        variant: str | None = None,
        dtype: str = "auto",
        max_retries: int = 2,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.model = model
        preset = next((p for k, p in PRESETS.items() if k in model.lower()), {})
        self.steps = int(steps if steps is not None else preset.get("steps", DEFAULTS["steps"]))
        self.guidance = float(
            guidance if guidance is not None else preset.get("guidance", DEFAULTS["guidance"])
        )
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps!r}")
        for name, value in (("width", width), ("height", height)):
            if value is not None and (int(value) != value or value < 8 or value % 8):
                raise ConfigError(f"{name} must be a positive multiple of 8, got {value!r}")
        if not 0.0 < strength <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {strength!r}")
        if dtype != "auto" and dtype not in _DTYPES:
            raise ConfigError(f"dtype must be auto or one of {sorted(_DTYPES)}, got {dtype!r}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries!r}")
        self.width, self.height = width, height
        self.negative_prompt = negative_prompt
        self.scheduler = scheduler
        self.img2img = bool(img2img)
        self.strength = float(strength)
        self.local_files_only = bool(local_files_only)
        self.revision, self.variant = revision, variant
        self.requested_dtype = dtype
        self.max_retries = int(max_retries)
        self.is_folder = _looks_like_path(model)
        self._identity: str | None = None
        self._pipe: Any = None
        self._i2i: Any = None

    # ------------------------------------------------------------ identity

    @property
    def dtype(self) -> str:
        if self.requested_dtype != "auto":
            return self.requested_dtype
        return "float16" if self.device.startswith("cuda") else "float32"

    def _weights(self) -> str:
        if self.is_folder:
            folder = Path(self.model).expanduser()
            if not (folder / "model_index.json").exists():
                raise ConfigError(
                    f"diffusers model folder {folder} does not exist or holds no "
                    "model_index.json; give a folder written by pipeline.save_pretrained() or a "
                    "hub id such as stabilityai/sdxl-turbo"
                )
            return f"folder:{weights_fingerprint(folder)}"
        return f"hub:{self.model}@{self.revision or 'main'}"

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "steps": self.steps, "guidance": self.guidance, "width": self.width,
            "height": self.height, "scheduler": self.scheduler, "dtype": self.dtype,
        }  # fmt: skip
        if self.img2img:
            params["strength"] = self.strength
        return params

    @property
    def identity(self) -> str:
        if self._identity is None:  # computed once: fingerprinting a model folder reads it
            ident = {"source": "diffusers", "v": KEY_VERSION, "weights": self._weights(),
                     "variant": self.variant, "img2img": self.img2img, **self.params}  # fmt: skip
            self._identity = json.dumps(ident, sort_keys=True)
        return self._identity

    @property
    def model_name(self) -> str:
        return f"diffusers:{self.model}"

    @property
    def uses_references(self) -> bool:
        return self.img2img

    def parents(self, item: PlanItem) -> list[str]:
        refs = list(item.reference_image_ids or [])
        return refs[:1] if self.img2img else []

    # ------------------------------------------------------------ loading

    def _load(self) -> None:
        diffusers = import_optional("diffusers", "diffusers", "diffusers", "text-to-image")
        import torch

        self._weights()  # a missing folder fails here with the clear message
        kwargs: dict[str, Any] = {"torch_dtype": getattr(torch, self.dtype),
                                  "local_files_only": self.local_files_only}  # fmt: skip
        if self.revision:
            kwargs["revision"] = self.revision
        if self.variant:
            kwargs["variant"] = self.variant
        where = str(Path(self.model).expanduser()) if self.is_folder else self.model
        try:
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                pipe = diffusers.AutoPipelineForText2Image.from_pretrained(where, **kwargs)
        except Exception as exc:  # hub errors, OSError, ValueError: all mean "cannot load"
            raise AtlantisError(
                f"cannot load text-to-image model {self.model!r}: {type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0].rstrip('.')}. Fix: give a local folder "
                "written by save_pretrained(); or, for a hub id, network access (gated models "
                "need a token: `hf auth login` or HF_TOKEN); or a pre-filled Hugging Face "
                "cache with --set generate.options.local_files_only=true"
            ) from exc
        if self.scheduler:
            pipe.scheduler = self._scheduler_class(diffusers).from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe.to(self.device)
        if self.img2img:
            self._i2i = diffusers.AutoPipelineForImage2Image.from_pipe(self._pipe)
            self._i2i.set_progress_bar_config(disable=True)

    def _scheduler_class(self, diffusers: Any) -> Any:
        cls = getattr(diffusers, str(self.scheduler), None)
        if cls is None or not hasattr(cls, "from_config") or "Scheduler" not in str(self.scheduler):
            valid = sorted(n for n in dir(diffusers) if n.endswith("Scheduler"))
            raise ConfigError(f"unknown scheduler {self.scheduler!r}; valid: {', '.join(valid)}")
        return cls

    def native_size(self) -> tuple[int, int]:
        """(width, height) the pipeline makes when none is given."""
        self.load()
        size = self._pipe.unet.config.sample_size * self._pipe.vae_scale_factor
        return int(self.width or size), int(self.height or size)

    # ------------------------------------------------------------ making images

    def make(
        self, items: Sequence[PlanItem], references: Mapping[str, Path] | None = None
    ) -> list[SourceResult]:
        self.load()
        results: list[SourceResult | None] = [None] * len(items)
        problems: dict[int, str] = {}
        pending = list(range(len(items)))
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            seeds = [derive_seed(items[i].seed, attempt) for i in pending]
            arrays, flagged = self._generate([items[i] for i in pending], seeds, references)
            retry = []
            for i, seed, array, nsfw in zip(pending, seeds, arrays, flagged, strict=True):
                problem = image_problem(array, nsfw)
                if problem:
                    problems[i] = problem
                    retry.append(i)
                    continue
                results[i] = SourceResult(image=to_pil(array), seed=seed, attempts=attempt + 1,
                                          parent_ids=self.parents(items[i]))  # fmt: skip
            pending = retry
        for i in pending:
            results[i] = SourceResult(
                error=f"{problems[i]} on all {self.max_retries + 1} seeds tried",
                attempts=self.max_retries + 1,
            )
        return [r for r in results if r is not None]

    def _generate(
        self, items: list[PlanItem], seeds: list[int], references: Mapping[str, Path] | None
    ) -> tuple[list[np.ndarray], list[bool]]:
        """Float images in [0, 1] (NaN kept) and safety flags, in item order.

        Items with a reference image go through img2img, the others through text-to-image:
        one pipeline call per kind.
        """
        arrays: list[Any] = [None] * len(items)
        flags = [False] * len(items)
        text = [i for i, it in enumerate(items) if not self.parents(it)]
        edit = [i for i, it in enumerate(items) if self.parents(it)]
        for group, refs in ((text, None), (edit, references or {})):
            if not group:
                continue
            images, nsfw = self._call([items[i] for i in group], [seeds[i] for i in group], refs)
            for j, i in enumerate(group):
                arrays[i], flags[i] = images[j], bool(nsfw is not None and nsfw[j])
        return arrays, flags

    def _call(
        self, items: list[PlanItem], seeds: list[int], references: Mapping[str, Path] | None
    ) -> tuple[np.ndarray, Sequence[bool] | None]:
        """One pipeline call: text-to-image, or img2img when ``references`` is given."""
        import torch

        gen_device = "cpu" if self.device == "mps" else self.device
        negatives = [it.negative_prompt or self.negative_prompt or "" for it in items]
        kwargs: dict[str, Any] = {
            "prompt": [it.description for it in items],
            "negative_prompt": negatives if any(negatives) else None,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "generator": [torch.Generator(gen_device).manual_seed(s) for s in seeds],
            "output_type": "np",
        }
        pipe = self._pipe
        if references is not None:
            width, height = self.native_size()
            kwargs["image"] = [self._reference(it, references, (width, height)) for it in items]
            kwargs["strength"] = self.strength
            pipe = self._i2i
        else:
            kwargs.update({k: v for k, v in (("width", self.width), ("height", self.height)) if v})
        with torch.inference_mode():
            out = pipe(**kwargs)
        return np.asarray(out.images), getattr(out, "nsfw_content_detected", None)

    def _reference(
        self, item: PlanItem, references: Mapping[str, Path], size: tuple[int, int]
    ) -> Image.Image:
        ref_id = self.parents(item)[0]
        if ref_id not in references:
            raise AtlantisError(f"plan item {item.id!r}: reference image {ref_id!r} not found")
        # On white, as the embedder sees it: convert("RGB") would hand img2img transparent
        # pixels (emoji, logos) in whatever colour they hold, often black.
        with open_image(references[ref_id]) as im:
            rgb = to_rgb(ImageOps.exif_transpose(im))
        return ImageOps.fit(rgb, size, Image.Resampling.BICUBIC)


def image_problem(array: np.ndarray, nsfw: bool = False) -> str | None:
    """Why an image is unusable (NaN, all black, flagged by the safety checker), or None."""
    if not np.isfinite(array).all():
        return "NaN pixels (numerical overflow; float16 models may need dtype float32)"
    if nsfw:
        return "flagged by the safety checker"
    if float(array.max(initial=0.0)) < BLACK_LEVEL:
        return "an all-black image"
    return None


def to_pil(array: np.ndarray) -> Image.Image:
    """Float [0, 1] HWC -> 8-bit RGB, rounding exactly as diffusers' own ``numpy_to_pil``."""
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8))

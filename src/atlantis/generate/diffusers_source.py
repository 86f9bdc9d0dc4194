"""Text-to-image with diffusers: ``diffusers:<hub id or local folder>``.

Any pipeline ``AutoPipelineForText2Image`` can load works: SDXL base 1.0 (the paper's
model), SDXL Turbo, SD 1.5 and 2.x, SD3/3.5 and FLUX.1 (schnell and dev). Steps, guidance,
the 16-bit dtype and family-specific call options come from ``diffusers_presets`` by model
family; explicit options win. With ``img2img=true`` an item that names real reference images
starts from the first one (``AutoPipelineForImage2Image``, ``strength``), as ALIA edits real
images; items without one (new classes) fall back to text-to-image.

Loading for real GPUs: ``dtype: auto`` is the family's half precision on CUDA (bfloat16
for FLUX and SD3, where float16 overflows to NaN; float16 where the GPU has no bfloat16)
and float32 elsewhere. In float16 the ``fp16`` weight variant is fetched when the model
has one (``variant``; SDXL's fp32 files are ~14 GB, its fp16 ones half that). ``vae``
swaps in another VAE (e.g. SDXL's fp16-fix VAE, which does not overflow in float16);
``offload`` (``model`` or ``sequential``, needs ``accelerate``) keeps idle components on
the CPU for GPUs too small for the whole pipeline; ``vae_slicing`` decodes a batch one
image at a time and ``vae_tiling`` a large image tile by tile (tiling changes pixels, so
it is part of the content address; slicing and offload do not change them).

Negative prompts (the source's ``negative_prompt`` and each item's) are passed only to a
pipeline that takes them and only when they act: with classifier-free guidance at most 1
(turbo, schnell) or FLUX without ``true_cfg_scale`` above 1 they would be ignored, and the
source warns once instead of pretending. The source-level negative prompt is part of the
content address, so changing it makes new images.

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
from atlantis.generate import diffusers_loading as loading
from atlantis.generate.base import ImageSource, PlanItem, SourceResult, derive_seed
from atlantis.generate.diffusers_presets import facts, preset_for

#: Bump when the way images are made changes, so stored images are not reused.
KEY_VERSION = 1
#: An image whose brightest pixel is below this (of 1.0) counts as all black.
BLACK_LEVEL = 4 / 255
_DTYPES = {"float32", "float16", "bfloat16"}
_OFFLOAD = {"none", "model", "sequential"}


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
        max_sequence_length: int | None = None,
        call_options: Mapping[str, Any] | None = None,
        vae: str | None = None,
        offload: str = "none",
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.model = model
        self.is_folder = loading.looks_like_path(model)
        folder = Path(model).expanduser() if self.is_folder else None
        self.facts = facts(model, folder)
        self.preset = preset_for(self.facts)
        self.steps = int(steps if steps is not None else self.preset.steps)
        self.guidance = float(guidance if guidance is not None else self.preset.guidance)
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
        if offload not in _OFFLOAD:
            raise ConfigError(f"offload must be one of {sorted(_OFFLOAD)}, got {offload!r}")
        if max_sequence_length is not None and int(max_sequence_length) < 1:
            raise ConfigError(f"max_sequence_length must be >= 1, got {max_sequence_length!r}")
        if call_options is not None and not isinstance(call_options, Mapping):
            raise ConfigError(
                "call_options must be a mapping of extra pipeline arguments, e.g. "
                f"{{true_cfg_scale: 4.0}}; got {call_options!r}"
            )
        self.width, self.height = width, height
        self.negative_prompt = negative_prompt
        self.scheduler = scheduler
        self.img2img = bool(img2img)
        self.strength = float(strength)
        self.local_files_only = bool(local_files_only)
        self.revision, self.variant = revision, variant
        self.requested_dtype = dtype
        self.max_retries = int(max_retries)
        # Family call options (FLUX's T5 cap) under the user's: explicit values win.
        self.call_options: dict[str, Any] = {**self.preset.call, **dict(call_options or {})}
        if max_sequence_length is not None:
            self.call_options["max_sequence_length"] = int(max_sequence_length)
        self.vae = vae
        self.offload = offload
        self.vae_slicing, self.vae_tiling = bool(vae_slicing), bool(vae_tiling)
        self._identity: str | None = None
        self._pipe: Any = None
        self._i2i: Any = None
        self._warned: set[str] = set()
        if negative_prompt and (why := self.negative_ignored()):
            self._warn(f"the negative prompt {negative_prompt!r} is ignored: {why}")

    # ------------------------------------------------------------ identity

    @property
    def dtype(self) -> str:
        if self.requested_dtype != "auto":
            return self.requested_dtype
        if not self.device.startswith("cuda"):
            return "float32"
        if self.preset.half == "bfloat16" and not loading.cuda_bf16():
            return "float16"  # pre-Ampere GPUs: dtype float32 if the images come out NaN
        return self.preset.half

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
        """The settings that shape the pixels (in the identity and each image's provenance).

        Keys that are new since addresses were first computed appear only when set, so
        images stored by an earlier version stay valid where nothing changed.
        """
        params: dict[str, Any] = {
            "steps": self.steps, "guidance": self.guidance, "width": self.width,
            "height": self.height, "scheduler": self.scheduler, "dtype": self.dtype,
        }  # fmt: skip
        if self.img2img:
            params["strength"] = self.strength
        if self.call_options:
            params["call_options"] = dict(sorted(self.call_options.items()))
        if self.negative_prompt:
            params["negative_prompt"] = self.negative_prompt
        if self.vae_tiling:
            params["vae_tiling"] = True
        return params

    @property
    def identity(self) -> str:
        if self._identity is None:  # computed once: fingerprinting a model folder reads it
            ident = {"source": "diffusers", "v": KEY_VERSION, "weights": self._weights(),
                     "variant": self.variant, "img2img": self.img2img, **self.params}  # fmt: skip
            if self.vae is not None:
                ident["vae"] = loading.vae_weights(self.vae)
            self._identity = json.dumps(ident, sort_keys=True, default=str)
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

    def negative_ignored(self) -> str | None:
        """Why this configuration ignores negative prompts, or None when they act."""
        if self.facts.family == "flux":
            if float(self.call_options.get("true_cfg_scale", 1.0)) <= 1.0:
                return ("FLUX uses a negative prompt only with true CFG; set "
                        "generate.options.call_options.true_cfg_scale above 1 (2x the compute)")  # fmt: skip
            return None
        if self.guidance <= 1.0:
            return (f"classifier-free guidance is off at guidance {self.guidance:g}; a negative "
                    "prompt needs guidance above 1")  # fmt: skip
        return None

    def prepare(self, items: Sequence[PlanItem]) -> None:
        """Warn once when the plan's negative prompts will have no effect on this model."""
        if any(it.negative_prompt for it in items) and (why := self.negative_ignored()):
            self._warn(f"the plan's negative prompts are ignored: {why}")

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(f"{self.model_name}: {message}", UserWarning, stacklevel=3)

    # ------------------------------------------------------------ loading

    def _load(self) -> None:
        diffusers = import_optional("diffusers", "diffusers", "diffusers", "text-to-image")
        import torch

        self._weights()  # a missing folder fails here with the clear message
        kwargs: dict[str, Any] = {"torch_dtype": getattr(torch, self.dtype),
                                  "local_files_only": self.local_files_only}  # fmt: skip
        if self.revision:
            kwargs["revision"] = self.revision
        if self.vae is not None:
            kwargs["vae"] = loading.load_vae(diffusers, self.vae, kwargs)
        folder = Path(self.model).expanduser() if self.is_folder else None
        variants = loading.variant_candidates(self.variant, self.dtype, folder)
        pipe = loading.load_pipeline(diffusers, self.model, folder, kwargs, variants)
        if self.scheduler:
            cls = loading.scheduler_class(diffusers, self.scheduler)
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        loading.configure_vae(pipe, slicing=self.vae_slicing, tiling=self.vae_tiling)
        if self.offload == "none":
            pipe = pipe.to(self.device)
        self._pipe = pipe
        if self.img2img:
            self._i2i = diffusers.AutoPipelineForImage2Image.from_pipe(self._pipe)
            self._i2i.set_progress_bar_config(disable=True)
        loading.apply_offload([self._pipe, self._i2i], self.offload, self.device)

    def native_size(self) -> tuple[int, int]:
        """(width, height) the pipeline makes when none is given.

        UNet pipelines and transformer ones (SD3, FLUX) alike set ``default_sample_size``
        (in latent pixels); older pipelines only have the UNet's ``sample_size``."""
        self.load()
        pipe = self._pipe
        latent = getattr(pipe, "default_sample_size", None)
        if latent is None:
            denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
            latent = denoiser.config.sample_size
        size = int(latent) * int(pipe.vae_scale_factor)
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
        pipe = self._i2i if references is not None else self._pipe
        accepts = loading.call_parameters(pipe)
        kwargs: dict[str, Any] = {
            "prompt": [it.description for it in items],
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "generator": [torch.Generator(gen_device).manual_seed(s) for s in seeds],
            "output_type": "np",
        }
        negatives = [it.negative_prompt or self.negative_prompt or "" for it in items]
        if any(negatives) and not self.negative_ignored():
            if "negative_prompt" in accepts:
                kwargs["negative_prompt"] = negatives
            else:
                self._warn(f"{type(pipe).__name__} takes no negative prompt; it is ignored")
        for key, value in self.call_options.items():
            if key not in accepts:
                raise ConfigError(
                    f"generate.options: {type(pipe).__name__} takes no argument {key!r}; "
                    f"it takes: {', '.join(sorted(accepts))}"
                )
            kwargs[key] = value
        if references is not None:
            width, height = self.native_size()
            kwargs["image"] = [self._reference(it, references, (width, height)) for it in items]
            kwargs["strength"] = self.strength
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

"""Loading a diffusers pipeline the way a GPU needs it: weight variant, VAE, offload.

Kept apart from ``diffusers_source`` (which makes images) because each piece here answers a
loading question the hub leaves to the caller: which weight files to fetch (a float16 load
of SDXL should not download ~14 GB of float32 files), which VAE to decode with (SDXL's own
overflows in float16 unless upcast; the fp16-fix VAE does not), and how to fit a pipeline on
a GPU smaller than it (accelerate's offload hooks).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atlantis.embed.base import import_optional
from atlantis.embed.cache import weights_fingerprint
from atlantis.errors import AtlantisError, ConfigError


def looks_like_path(model: str) -> bool:
    """True for a local folder (or something written like one), False for a hub id."""
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()


def variant_candidates(variant: str | None, dtype: str, folder: Path | None) -> list[str | None]:
    """Weight variants to try in order.

    An explicit ``variant`` is used as given (``""``: the plain files). Otherwise a float16
    load asks for the ``fp16`` files where the model has them: a folder is looked at, a hub
    repo is tried and the plain files follow if it has none. Both hold the same float16
    numbers once loaded (the fp16 files are the float32 ones rounded), so this does not
    change a single pixel, only the download.
    """
    if variant is not None:
        return [variant or None]
    if dtype != "float16":
        return [None]
    if folder is not None:
        has = any(folder.glob("*/*.fp16.safetensors")) or any(folder.glob("*/*.fp16.bin"))
        return ["fp16"] if has else [None]
    return ["fp16", None]


def load_pipeline(diffusers: Any, model: str, folder: Path | None, kwargs: dict[str, Any],
                  variants: Sequence[str | None]) -> Any:  # fmt: skip
    """``AutoPipelineForText2Image.from_pretrained`` over ``variants``; one clear error."""
    where = str(folder) if folder is not None else model
    error: Exception | None = None
    for variant in variants:
        extra = {"variant": variant} if variant else {}
        try:
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                return diffusers.AutoPipelineForText2Image.from_pretrained(where, **kwargs, **extra)
        except Exception as exc:  # hub errors, OSError, ValueError: all mean "cannot load"
            error = exc
    assert error is not None
    raise AtlantisError(
        f"cannot load text-to-image model {model!r}: {type(error).__name__}: "
        f"{(str(error).splitlines() or [''])[0].rstrip('.')}. Fix: give a local folder "
        "written by save_pretrained(); or, for a hub id, network access (gated models "
        "need a token: `hf auth login` or HF_TOKEN); or a pre-filled Hugging Face "
        "cache with --set generate.options.local_files_only=true"
    ) from error


def vae_weights(vae: str) -> str:
    """What identifies a replacement VAE in the content address: its files, or its hub id."""
    if looks_like_path(vae):
        folder = Path(vae).expanduser()
        if not (folder / "config.json").exists():
            raise ConfigError(
                f"generate.options.vae: folder {folder} does not exist or holds no config.json; "
                "give a folder written by AutoencoderKL.save_pretrained() or a hub id"
            )
        return f"folder:{weights_fingerprint(folder)}"
    return f"hub:{vae}"


def load_vae(diffusers: Any, vae: str, kwargs: dict[str, Any]) -> Any:
    """The replacement VAE, in the pipeline's dtype, to pass as ``vae=`` when loading it."""
    vae_weights(vae)  # a missing folder fails with the clear message
    where = str(Path(vae).expanduser()) if looks_like_path(vae) else vae
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            return diffusers.AutoencoderKL.from_pretrained(where, **kwargs)
    except Exception as exc:
        raise AtlantisError(
            f"cannot load the VAE {vae!r} (generate.options.vae): {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0]}. Fix: a folder written by "
            "AutoencoderKL.save_pretrained() or a reachable hub id"
        ) from exc


def scheduler_class(diffusers: Any, name: str) -> Any:
    """The diffusers scheduler class called ``name``, or a ConfigError listing the valid ones."""
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_config") or "Scheduler" not in name:
        valid = sorted(n for n in dir(diffusers) if n.endswith("Scheduler"))
        raise ConfigError(f"unknown scheduler {name!r}; valid: {', '.join(valid)}")
    return cls


def configure_vae(pipe: Any, *, slicing: bool, tiling: bool) -> None:
    """Decode a batch one image at a time (same pixels, less memory) and/or in tiles."""
    vae = getattr(pipe, "vae", None)
    if vae is None:
        return
    if slicing:
        vae.enable_slicing()
    if tiling:
        vae.enable_tiling()


def apply_offload(pipes: Sequence[Any], offload: str, device: str) -> None:
    """accelerate's CPU offload hooks on each pipeline (``model`` or ``sequential``).

    The img2img pipeline shares its modules with the text one; it is hooked last, and its
    hooks then serve both."""
    if offload == "none":
        return
    import_optional("accelerate", "accelerate", "diffusers", f"offload={offload}")
    for pipe in pipes:
        if pipe is None:
            continue
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)


def call_parameters(pipe: Any) -> set[str]:
    """The keyword arguments ``pipe(...)`` accepts (older FLUX pipelines take no negatives)."""
    return set(inspect.signature(type(pipe).__call__).parameters) - {"self"}


def cuda_bf16() -> bool:
    """True when a CUDA GPU is present and computes in bfloat16 (Ampere and later)."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())

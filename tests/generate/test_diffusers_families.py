"""SDXL, FLUX.1 and SD3 through the diffusers source and the generate stage.

Each architecture is built tiny and random inside the test (``tiny_sd``), saved with
``save_pretrained`` and loaded back offline through the production loader, as a user's
downloaded model would be. Presets, dtype choice, weight variants, a replacement VAE,
offload, negative prompts and call options are checked on them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atlantis.errors import AtlantisError, ConfigError
from atlantis.generate import diffusers_loading
from atlantis.generate.base import ItemSpec
from atlantis.generate.diffusers_presets import PRESETS, facts, preset_for
from atlantis.generate.diffusers_source import DiffusersSource
from atlantis.generate.registry import create_source
from atlantis.generate.stage import generate, load_generated
from atlantis.store.run import Run
from tests.generate.conftest import plan_rows, sd_config, write_plan
from tests.generate.tiny_sd import sd_vae

ARM = "targeted"
Family = Callable[[str], Path]


def source(folder: Path, **options: object) -> DiffusersSource:
    options = {"steps": 2, "local_files_only": True, "device": "cpu", "width": 32,
               "height": 32, **options}  # fmt: skip
    made = create_source(f"diffusers:{folder}", **options)
    assert isinstance(made, DiffusersSource)
    return made


def item(seed: int = 1, **fields: object) -> ItemSpec:
    return ItemSpec(id=f"i{seed}", class_name="cat", description="a red cat", seed=seed,
                    **fields)  # type: ignore[arg-type]  # fmt: skip


def pixels(result: object) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", ["sdxl", "flux", "sd3"])
def test_each_family_runs_end_to_end_through_the_stage(
    family: str, tiny_family: Family, tmp_path: Path
) -> None:
    folder = tiny_family(family)
    run = Run(tmp_path / "run")
    run.root.mkdir()
    write_plan(run, plan_rows(3))
    cfg = sd_config(folder, batch_size=2, options={"width": 32, "height": 32})
    m = generate(run, cfg, ARM, progress=False)
    assert m.status == "done" and m.counts["made"] == 3 and m.counts["failed"] == 0
    records = load_generated(run, ARM)
    for record in records:
        with Image.open(run.root / record.path) as im:
            assert im.size == (32, 32) and np.asarray(im).std() > 0
    params = records[0].provenance.params
    assert params["steps"] == 2 and params["dtype"] == "float32"
    if family == "flux":  # schnell's preset: its T5 cap travels with the image
        assert params["guidance"] == 0.0
        assert params["call_options"] == {"max_sequence_length": 256}


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_img2img_on_transformer_pipelines_uses_their_native_size(
    family: str, tiny_family: Family, tmp_path: Path
) -> None:
    # FLUX and SD3 have a transformer, no UNet: the size comes from default_sample_size.
    src = source(tiny_family(family), img2img=True, strength=0.5, width=None, height=None)
    pipe = src.load()._pipe
    side = pipe.default_sample_size * pipe.vae_scale_factor
    assert src.native_size() == (side, side)
    ref = tmp_path / "ref.png"
    Image.new("RGB", (40, 30), "red").save(ref)
    (made,) = src.make([item(reference_image_ids=["r1"])], {"r1": ref})
    assert made.ok and made.parent_ids == ["r1"] and made.image.size == (side, side)


def test_presets_by_family_from_the_folder_and_from_hub_names(tiny_family: Family) -> None:
    flux, dev, sd3 = tiny_family("flux"), tiny_family("flux-dev"), tiny_family("sd3")
    # A folder is judged by its files: pipeline class and FLUX's guidance embedding.
    assert preset_for(facts(str(flux), flux)).name == "flux-schnell"
    assert preset_for(facts(str(dev), dev)).name == "flux-dev"
    assert preset_for(facts(str(sd3), sd3)).name == "sd3"
    assert facts(str(tiny_family("sdxl")), tiny_family("sdxl")).family == "sdxl"
    # A hub id by its name.
    by_name = {
        "black-forest-labs/FLUX.1-schnell": ("flux-schnell", 4, 0.0),
        "black-forest-labs/FLUX.1-dev": ("flux-dev", 28, 3.5),
        "stabilityai/stable-diffusion-3.5-large": ("sd3", 28, 4.5),
        "stabilityai/stable-diffusion-3.5-large-turbo": ("sd3-turbo", 4, 0.0),
        "stabilityai/sdxl-turbo": ("turbo", 4, 0.0),
        "stabilityai/stable-diffusion-xl-base-1.0": ("default", 30, 7.5),
    }
    for name, (preset, steps, guidance) in by_name.items():
        src = DiffusersSource(name)
        assert (src.preset.name, src.steps, src.guidance) == (preset, steps, guidance), name
    schnell = DiffusersSource("black-forest-labs/FLUX.1-schnell")
    assert schnell.call_options == {"max_sequence_length": 256}
    # Explicit options win over the preset.
    mine = DiffusersSource("black-forest-labs/FLUX.1-schnell", steps=8, guidance=1.0,
                           max_sequence_length=128)  # fmt: skip
    assert (mine.steps, mine.guidance, mine.call_options["max_sequence_length"]) == (8, 1.0, 128)
    assert {p.name for p in PRESETS} >= {"flux-schnell", "flux-dev", "sd3", "turbo", "default"}


def test_auto_dtype_is_the_familys_half_precision_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # judged, never run
    flux = DiffusersSource("black-forest-labs/FLUX.1-schnell", device="cuda")
    sdxl = DiffusersSource("stabilityai/sdxl-turbo", device="cuda")
    monkeypatch.setattr(diffusers_loading, "cuda_bf16", lambda: True)
    assert (flux.dtype, sdxl.dtype) == ("bfloat16", "float16")
    monkeypatch.setattr(diffusers_loading, "cuda_bf16", lambda: False)  # e.g. a T4
    assert flux.dtype == "float16"
    assert DiffusersSource("black-forest-labs/FLUX.1-schnell", device="cpu").dtype == "float32"
    assert DiffusersSource("x/flux", device="cuda", dtype="float32").dtype == "float32"


def test_float16_loads_fetch_the_fp16_weight_variant(tmp_path: Path, tiny_sd: Path) -> None:
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_sd, torch_dtype=torch.float16)
    half = tmp_path / "fp16-only"
    pipe.save_pretrained(half, variant="fp16")  # only *.fp16.safetensors files
    assert diffusers_loading.variant_candidates(None, "float16", half) == ["fp16"]
    assert diffusers_loading.variant_candidates(None, "float32", half) == [None]
    assert diffusers_loading.variant_candidates(None, "float16", tiny_sd) == [None]
    assert diffusers_loading.variant_candidates("", "float16", None) == [None]
    assert diffusers_loading.variant_candidates(None, "float16", None) == ["fp16", None]
    loaded = source(half, dtype="float16").load()
    assert loaded._pipe.unet.dtype == torch.float16


def test_a_hub_model_without_fp16_files_falls_back_to_its_plain_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import diffusers

    calls: list[str | None] = []

    def fake_from_pretrained(where: str, **kwargs: object) -> str:
        calls.append(kwargs.get("variant"))  # type: ignore[arg-type]
        if kwargs.get("variant") == "fp16":
            raise ValueError("no such modeling files are available for variant fp16")
        return "pipeline"

    monkeypatch.setattr(diffusers.AutoPipelineForText2Image, "from_pretrained",
                        fake_from_pretrained)  # fmt: skip
    got = diffusers_loading.load_pipeline(diffusers, "org/model", None, {}, ["fp16", None])
    assert got == "pipeline" and calls == ["fp16", None]
    calls.clear()
    with pytest.raises(AtlantisError, match=r"cannot load .*'org/model'.*variant fp16"):
        diffusers_loading.load_pipeline(diffusers, "org/model", None, {}, ["fp16"])


def test_a_replacement_vae_is_loaded_and_changes_the_address(tmp_path: Path, tiny_sd: Path) -> None:
    torch.manual_seed(7)
    other = sd_vae()
    other.save_pretrained(tmp_path / "vae")
    plain, swapped = source(tiny_sd), source(tiny_sd, vae=str(tmp_path / "vae"))
    assert plain.address(item()) != swapped.address(item())
    swapped.load()
    got = swapped._pipe.vae.state_dict()
    assert all(torch.equal(got[k], v) for k, v in other.state_dict().items())
    assert swapped.make([item()])[0].ok
    with pytest.raises(ConfigError, match=r"generate.options.vae: folder .*nowhere"):
        source(tiny_sd, vae=str(tmp_path / "nowhere")).identity  # noqa: B018


def test_offload_and_vae_slicing_keep_the_pixels(tiny_family: Family) -> None:
    folder = tiny_family("sdxl")
    plain = source(folder).make([item(), item(2)])
    offloaded = source(folder, offload="model", vae_slicing=True)
    again = offloaded.make([item(), item(2)])
    assert hasattr(offloaded._pipe.unet, "_hf_hook")  # accelerate's offload hook is on
    for a, b in zip(plain, again, strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 1
    # Offload and slicing change neither the pixels nor the address; tiling does.
    assert source(folder, offload="model").address(item()) == source(folder).address(item())
    assert source(folder, vae_tiling=True).address(item()) != source(folder).address(item())
    with pytest.raises(ConfigError, match="offload must be one of"):
        source(folder, offload="disk")


def test_negative_prompts_act_or_the_source_says_they_are_ignored(
    tiny_sd: Path, tiny_family: Family, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Guidance 0 (turbo-style): a negative prompt cannot act; the source says so once.
    with pytest.warns(UserWarning, match=r"negative prompt 'blurry' is ignored: .*guidance 0"):
        src = source(tiny_sd, guidance=0.0, negative_prompt="blurry")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        src.make([item()])  # no second warning, no TypeError
    # With guidance it acts, and is part of the content address.
    guided = source(tiny_sd, guidance=5.0)
    neg = source(tiny_sd, guidance=5.0, negative_prompt="blurry")
    assert guided.address(item()) != neg.address(item())
    assert np.abs(pixels(guided.make([item()])[0]) - pixels(neg.make([item()])[0])).max() > 0
    # FLUX: only with true CFG; the plan's negatives are flagged when the stage prepares.
    flux = source(tiny_family("flux"))
    with pytest.warns(UserWarning, match=r"plan's negative prompts are ignored: .*true_cfg"):
        flux.prepare([item(negative_prompt="blurry")])
    cfg = source(tiny_family("flux"), call_options={"true_cfg_scale": 2.0})
    with_neg = cfg.make([item(negative_prompt="blurry")])[0]
    without = cfg.make([item()])[0]
    assert np.abs(pixels(with_neg) - pixels(without)).max() > 0
    # An older pipeline without the argument: warned, not passed (no TypeError).
    real = diffusers_loading.call_parameters
    monkeypatch.setattr(diffusers_loading, "call_parameters",
                        lambda pipe: real(pipe) - {"negative_prompt"})  # fmt: skip
    with pytest.warns(UserWarning, match="takes no negative prompt"):
        assert cfg.make([item(negative_prompt="blurry")])[0].ok


def test_call_options_reach_the_pipeline_or_fail_clearly(tiny_family: Family) -> None:
    flux = source(tiny_family("flux"), max_sequence_length=8)
    assert flux.make([item()])[0].ok
    assert flux.params["call_options"] == {"max_sequence_length": 8}
    with pytest.raises(ConfigError, match=r"takes no argument 'no_such_arg'; it takes: .*prompt"):
        source(tiny_family("flux"), call_options={"no_such_arg": 1}).make([item()])
    with pytest.raises(ConfigError, match="call_options must be a mapping"):
        source(tiny_family("flux"), call_options=[1])
    with pytest.raises(ConfigError, match="max_sequence_length must be >= 1"):
        source(tiny_family("flux"), max_sequence_length=0)


def test_the_readme_preset_table_is_the_code() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|(.*)$", readme,
                                                        re.M)}  # fmt: skip
    for p in PRESETS:
        cells = [c.strip() for c in rows[p.name].split("|")]
        assert int(cells[1]) == p.steps and float(cells[2].split()[0]) == p.guidance, p.name
        assert cells[3] == p.half, p.name
        for key, value in p.call.items():
            assert f"`{key}` {value}" in cells[4], p.name

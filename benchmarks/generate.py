"""Benchmark the generate stage: its overhead per image, and SDXL-Turbo batch throughput.

Run:  .venv/bin/python benchmarks/generate.py [--quick] [--images N] [--repeat R]

1. Overhead (CPU or GPU). The tiny random Stable Diffusion of the tests (built here, saved
   to a temporary folder, no download) makes N images two ways with the same settings
   (size, steps, batch, one seeded generator per image):
     direct     a loop calling the diffusers pipeline and saving each image as PNG;
     framework  ``atlantis.generate.stage.generate`` on a run with an N-item plan: content
                addresses, provenance-carrying PNGs written atomically (fsync), the record
                log, the manifest; the stage's wall time minus its model loading.
   Each method runs ``--repeat`` times, interleaved; the fastest run of each is reported
   (the least disturbed on a shared machine). The stage also times its pipeline calls, so
   its bookkeeping (stage time minus pipeline time) is measured without comparing two noisy
   runs; target: within 5 % of the direct loop's time per image. The absolute figure (ms
   per image) is what carries over to real models: SDXL Turbo takes ~8 s per image on an
   A100 in the paper's setting, SDXL base ~30 s.

2. SDXL-Turbo throughput (CUDA only). The SDXL architecture (UNet 2.6 B parameters, both
   CLIP text encoders, the SDXL VAE) with *random* weights built from its published
   configs, fp16, 512 x 512, 1 step, guidance 0: images per second at batch 1 vs batch 8.
   Random weights cost the same FLOPs as the real ones. ``--sdxl-dry-run`` runs a scaled-
   down copy of the same code on the CPU, to check it without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.generate.tiny_sd


def overhead(folder: Path, work: Path, n: int, size: int, steps: int, batch: int,
             device: str) -> dict[str, float]:  # fmt: skip
    """Seconds per image, direct loop vs the generate stage; one run each."""
    import torch
    from diffusers import AutoPipelineForText2Image
    from tests.generate.conftest import plan_rows, write_plan

    from atlantis.generate.config import GenerateConfig
    from atlantis.generate.stage import generate
    from atlantis.store.run import Run

    rows = plan_rows(n)
    pipe = AutoPipelineForText2Image.from_pretrained(folder, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    out = work / "direct"
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        chunk = rows[i : i + batch]
        images = pipe(
            [r["description"] for r in chunk], num_inference_steps=steps, guidance_scale=7.5,
            height=size, width=size, output_type="pil",
            generator=[torch.Generator(device).manual_seed(r["seed"]) for r in chunk],
        ).images  # fmt: skip
        for r, image in zip(chunk, images, strict=True):
            image.save(out / f"{r['id']}.png")
    direct = (time.perf_counter() - t0) / n

    run = Run(work / "run")
    run.root.mkdir(parents=True)
    write_plan(run, rows)
    cfg = GenerateConfig(source=f"diffusers:{folder}", batch_size=batch, device=device,
                         dtype="float32", options={"steps": steps, "width": size,
                                                   "height": size, "local_files_only": True})  # fmt: skip
    m = generate(run, cfg, "targeted", progress=False)
    assert m.counts["made"] == n, m.counts
    framework = (m.timings["total_s"] - m.timings.get("load_s", 0.0)) / n
    # per_image_s is the time spent inside the pipeline calls: the rest is bookkeeping.
    return {"direct": direct, "framework": framework, "compute": m.timings["per_image_s"]}


def run_overhead(args: argparse.Namespace) -> None:
    import torch
    from tests.generate.tiny_sd import build_tiny_sd

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(args.threads)
    size, steps = (64, 2) if args.quick else (args.size, args.steps)
    n = 8 if args.quick else args.images
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_sd(Path(tmp) / "tiny-sd")
        best: dict[str, float] = {}
        for r in range(args.repeat):
            work = Path(tmp) / f"rep{r}"
            res = overhead(folder, work, n, size, steps, args.batch, device)
            best = {k: min(v, best.get(k, float("inf"))) for k, v in res.items()}
            shutil.rmtree(work)
    extra = best["framework"] - best["compute"]
    print(f"overhead: tiny random SD, {n} images {size}x{size}, {steps} steps, batch "
          f"{args.batch}, {device}, best of {args.repeat}")  # fmt: skip
    print(f"  direct diffusers loop + PNG save   : {1000 * best['direct']:8.1f} ms/image")
    print(f"  atlantis generate stage (no load)  : {1000 * best['framework']:8.1f} ms/image")
    print(f"    inside the pipeline calls        : {1000 * best['compute']:8.1f} ms/image")
    print(
        f"  stage bookkeeping: {1000 * extra:+.1f} ms/image = "
        f"{100 * extra / best['direct']:+.1f} % of the direct loop (target within 5 %)"
    )
    print(
        f"  stage vs direct, end to end: {100 * (best['framework'] / best['direct'] - 1):+.1f} % "
        "(includes run-to-run noise of the pipeline itself)"
    )


# ------------------------------------------------------------------ SDXL-Turbo architecture

SDXL_UNET = dict(
    block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
    transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048, layers_per_block=2,
    addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, sample_size=64, use_linear_projection=True,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
)  # fmt: skip
SDXL_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 4, sample_size=512,
                up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.13025,
                force_upcast=False)  # fmt: skip
TEXT_1 = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
              num_hidden_layers=12, projection_dim=768, hidden_act="quick_gelu")  # fmt: skip
TEXT_2 = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20,
              num_hidden_layers=32, projection_dim=1280, hidden_act="gelu")  # fmt: skip
#: A scaled-down copy with the same structure, for --sdxl-dry-run on a CPU.
DRY = {
    "unet": dict(SDXL_UNET, block_out_channels=(32, 64, 128), attention_head_dim=(2, 4, 8),
                 transformer_layers_per_block=(1, 1, 1), cross_attention_dim=96,
                 addition_time_embed_dim=8, projection_class_embeddings_input_dim=112,
                 layers_per_block=1, sample_size=16),
    "vae": dict(SDXL_VAE, block_out_channels=(32, 32, 64, 64), layers_per_block=1),
    "text_1": dict(TEXT_1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                   num_hidden_layers=2, projection_dim=32),
    "text_2": dict(TEXT_2, hidden_size=64, intermediate_size=128, num_attention_heads=2,
                   num_hidden_layers=2, projection_dim=64),
}  # fmt: skip
FULL = {"unet": SDXL_UNET, "vae": SDXL_VAE, "text_1": TEXT_1, "text_2": TEXT_2}


def sdxl_pipeline(cfg: dict, device: str, dtype: object, tok_dir: Path) -> object:
    """An SDXL pipeline with random weights (SDXL Turbo's scheduler settings)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from tests.generate.tiny_sd import write_char_tokenizer
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    tokenizer = CLIPTokenizer.from_pretrained(write_char_tokenizer(tok_dir), model_max_length=77)
    common = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                  pad_token_id=1)  # fmt: skip
    with torch.device(device):  # initialise on the GPU: 2.6 B random weights in seconds
        unet = UNet2DConditionModel(**cfg["unet"]).to(dtype)
        vae = AutoencoderKL(**cfg["vae"]).to(dtype)
        te1 = CLIPTextModel(CLIPTextConfig(**cfg["text_1"], **common)).to(dtype)
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**cfg["text_2"], **common)).to(dtype)
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        timestep_spacing="trailing",
    )  # fmt: skip
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
                                     scheduler=scheduler)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_sdxl(args: argparse.Namespace) -> None:
    import torch

    dry = args.sdxl_dry_run
    if not dry and not torch.cuda.is_available():
        print("sdxl-turbo throughput: skipped (no CUDA device; --sdxl-dry-run checks the code)")
        return
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # random weights: no "keep in float32" advice
    device, dtype = ("cpu", torch.float32) if dry else ("cuda", torch.float16)
    cfg, size = (DRY, 128) if dry else (FULL, 512)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = sdxl_pipeline(cfg, device, dtype, Path(tmp) / "tok")
    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e9
    results = {}
    for batch in (1, 8):
        n = 1 if dry else (16 if batch == 1 else 32)

        def call(k: int, batch: int = batch) -> None:
            pipe(["a photo of a bird on a branch"] * k, num_inference_steps=1,
                 guidance_scale=0.0, height=size, width=size, output_type="pil",
                 generator=[torch.Generator(device).manual_seed(i) for i in range(k)])  # fmt: skip

        call(batch)  # warm-up: kernels, cudnn autotune, allocator
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(max(1, n // batch)):
            call(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        results[batch] = max(1, n // batch) * batch / (time.perf_counter() - t0)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run, scaled down)"
    print(f"sdxl-turbo architecture, random weights ({params:.2f} B UNet params), {dtype}, "
          f"{size}x{size}, 1 step, guidance 0, on {name}")  # fmt: skip
    for batch, ips in results.items():
        print(f"  batch {batch}: {ips:7.2f} images/s ({1000 / ips:7.1f} ms/image)")
    print(f"  batch 8 / batch 1 speed-up: {results[8] / results[1]:.2f}x")
    if args.json:
        print(json.dumps({"sdxl_images_per_s": results}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 images, 64 px, 2 steps")
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=128, help="image side in pixels (multiple of 8)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--sdxl-dry-run", action="store_true", help="run part 2 scaled down, on CPU")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not args.skip_overhead:
        run_overhead(args)
    run_sdxl(args)


if __name__ == "__main__":
    main()

"""One GPU check of the real architectures, on random weights, in under 8 minutes, offline.

Run:  .venv/bin/python benchmarks/gpu_check.py [--only sdxl,flux,train,recall] [--json PATH]
      .venv/bin/python benchmarks/gpu_check.py --tiny      # the same code, scaled down, CPU

Every model is built from a config shipped in ``benchmarks/configs/`` (the published
config.json values of SDXL-Turbo's UNet, the SDXL VAE, SDXL's two CLIP text encoders,
FLUX.1-schnell's transformer, and DINO ViT-S/16's timm geometry) with *random* weights: no
hub, no download. Random weights cost the same FLOPs, memory and kernels as the trained
ones (the same shapes run the same matmuls), so speed measured on them is the real
models' speed; only the pictures are noise. ``benchmarks/configs/tiny/`` holds scaled-down
copies of the same files: ``--tiny`` runs every check through the same code on the CPU in
seconds (what CI and ``tests/benchmarks/test_gpu_check.py`` run).

Checks (one row each of one table; a failing check prints its error in its row and the
others still run; the script exits 0):

  sdxl    SDXL-Turbo architecture (UNet 2.57 B, CLIP-L + bigG text encoders, SDXL VAE), fp16,
          512 px, 4 steps, guidance 0, batch 8: images/s of the atlantis generate stage
          (``create_source("diffusers:<folder>")`` on the pipeline saved to a temporary folder,
          then ``atlantis.generate.stage.generate``: PNGs with provenance, records, manifest)
          vs a bare diffusers loop (pipeline call + PNG save) on the same pipeline and
          settings. Both after one warm-up batch; model loading and the stage's one-off hash
          of the model folder are reported, not counted.
  flux    FLUX.1-schnell's transformer (11.9 B, 19 double + 38 single blocks), bf16, if the
          GPU has ~30 GB free (else skipped, saying why): one denoising-step latency at
          512 px (1,024 image + 256 text tokens) and images/s for 4 steps at batch 1 and 4.
          Transformer only: no T5 / CLIP text encoders, no VAE decode.
  train   DINO ViT-S/16 (timm vit_small_patch16_224 geometry) training at batch 900 through
          ``atlantis.train.loop.fit`` (the dino preset, steps mode, one period) with its
          default loader (``TrainConfig.loader_workers``) over ~1,000 JPEGs of 500 x 375
          written to a temporary folder. The loader class fit uses is swapped for a subclass
          that times each wait for a batch: images/s, and whether training is loader-bound
          (share of each step spent waiting on the loader, first step excluded).
  recall  Recall@K at SOP scale (60,502 x 512 clustered embeddings, 11,316 classes, K = 1,
          10, 100, 1000) through ``atlantis.evaluation.evaluate_retrieval`` on the GPU (the
          top-K scan) vs the CPU (the counting path), and whether they agree.

Expected runtime on one H100: about 4-6 minutes in all (sdxl ~2 min, most of it writing and
reading the 7 GB model folder; flux ~1 min; train ~1 min; recall < 1 min). Without a CUDA
GPU (and without ``--tiny``) the script prints one line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.generate.* and benchmarks.recall_at_k

CONFIGS = ROOT / "benchmarks" / "configs"
SKIP_LINE = "gpu_check: no CUDA GPU found; skipped every check (--tiny runs them on the CPU)"


@dataclass(frozen=True)
class Settings:
    """Sizes of every check; ``FULL`` on a GPU, ``TINY`` on the CPU."""

    tiny: bool
    device: str
    configs: Path
    sdxl_size: int = 512
    sdxl_steps: int = 4
    sdxl_batch: int = 8
    sdxl_batches: int = 3  # timed batches, after one warm-up batch
    flux_size: int = 512
    flux_text_tokens: int = 256  # FLUX.1-schnell's max_sequence_length
    flux_steps: int = 4
    flux_batches: tuple[int, ...] = (1, 4)
    flux_repeats: int = 3
    flux_free_gib: float = 30.0  # ~24 GB of bf16 weights + activations
    train_images: int = 1000
    train_classes: int = 100
    jpeg_size: tuple[int, int] = (500, 375)
    train_batch: int = 900
    train_steps: int = 24
    recall_n: int = 60_502
    recall_classes: int = 11_316
    recall_dim: int = 512
    recall_ks: tuple[int, ...] = (1, 10, 100, 1000)


FULL = Settings(tiny=False, device="cuda", configs=CONFIGS)
TINY = Settings(
    tiny=True, device="cpu", configs=CONFIGS / "tiny", sdxl_size=64, sdxl_steps=2,
    sdxl_batch=2, sdxl_batches=1, flux_size=64, flux_text_tokens=8, flux_steps=2,
    flux_batches=(1, 2), flux_repeats=1, train_images=40, train_classes=4, jpeg_size=(50, 38),
    train_batch=18, train_steps=2, recall_n=600, recall_classes=113, recall_dim=32,
    recall_ks=(1, 10, 100),
)  # fmt: skip


@dataclass
class Row:
    """One check's result: ``value`` in ``unit`` is its headline number."""

    check: str
    status: str  # ok, skipped or error
    value: float | None = None
    unit: str = ""
    note: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def load_config(s: Settings, name: str) -> dict[str, Any]:
    """A shipped config without its ``_``-keys (class name, provenance note)."""
    data = json.loads((s.configs / name).read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _count(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------ sdxl


def build_sdxl(s: Settings, tok_dir: Path, dtype: Any) -> Any:
    """SDXL-Turbo's pipeline from the shipped configs, random weights, on ``s.device``."""
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

    text_1 = load_config(s, "clip_vit_l14_text.json")
    text_2 = load_config(s, "openclip_bigg_text.json")
    tokenizer = CLIPTokenizer.from_pretrained(write_char_tokenizer(tok_dir),
                                              model_max_length=text_1["max_position_embeddings"])  # fmt: skip
    with torch.device(s.device):  # initialised where it runs: 2.6 B random weights in seconds
        unet = UNet2DConditionModel.from_config(load_config(s, "sdxl_turbo_unet.json")).to(dtype)
        vae = AutoencoderKL.from_config(load_config(s, "sdxl_vae.json")).to(dtype)
        te1 = CLIPTextModel(CLIPTextConfig(**text_1)).to(dtype)
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_2)).to(dtype)
    scheduler = EulerAncestralDiscreteScheduler.from_config(
        load_config(s, "sdxl_turbo_scheduler.json")
    )
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
                                     scheduler=scheduler)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def check_sdxl(s: Settings, work: Path) -> Row:
    import torch
    from diffusers.utils import logging as diffusers_logging
    from tests.generate.conftest import plan_rows, write_plan
    from transformers.utils import logging as transformers_logging

    from atlantis.generate.config import GenerateConfig
    from atlantis.generate.registry import create_source
    from atlantis.generate.stage import generate
    from atlantis.plan.schema import PlanItem
    from atlantis.store.run import Run

    diffusers_logging.set_verbosity_error()  # random weights: no "keep in float32" advice
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    dtype_name = "float16" if s.device == "cuda" else "float32"
    dtype = getattr(torch, dtype_name)
    batch, size, steps = s.sdxl_batch, s.sdxl_size, s.sdxl_steps
    n = batch * s.sdxl_batches
    rows = plan_rows(n + batch)  # the first batch warms up each method
    warm, timed = rows[:batch], rows[batch:]
    pipe = build_sdxl(s, work / "tokenizer", dtype)
    params = sum(p.numel() for p in pipe.unet.parameters())
    folder = work / "sdxl-turbo-random"
    t = time.perf_counter()
    pipe.save_pretrained(folder)
    save_s = time.perf_counter() - t

    bare_dir = work / "bare"
    bare_dir.mkdir()

    def bare(chunk: list[dict]) -> None:
        images = pipe([r["description"] for r in chunk], num_inference_steps=steps,
                      guidance_scale=0.0, height=size, width=size, output_type="pil",
                      generator=[torch.Generator(s.device).manual_seed(r["seed"])
                                 for r in chunk]).images  # fmt: skip
        for r, image in zip(chunk, images, strict=True):
            image.save(bare_dir / f"{r['id']}.png")

    with torch.inference_mode():
        bare(warm)
        _sync(s.device)
        t = time.perf_counter()
        for i in range(0, n, batch):
            bare(timed[i : i + batch])
        _sync(s.device)
    bare_ips = n / (time.perf_counter() - t)
    pipe = None  # free it before the stage loads its own copy
    _free(s.device)

    options = {"steps": steps, "guidance": 0.0, "width": size, "height": size,
               "local_files_only": True}  # fmt: skip
    source = create_source(f"diffusers:{folder}", device=s.device, dtype=dtype_name,
                           max_retries=0, **options)  # fmt: skip
    t = time.perf_counter()
    source.load()
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    _ = source.identity  # hashes the model folder once per process: not per image
    hash_s = time.perf_counter() - t
    source.make([PlanItem.model_validate(r) for r in warm])
    run = Run(work / "run")
    run.root.mkdir(parents=True)
    write_plan(run, timed)
    cfg = GenerateConfig(source=f"diffusers:{folder}", options=options, batch_size=batch,
                         device=s.device, dtype=dtype_name, max_retries=0)  # fmt: skip
    m = generate(run, cfg, "targeted", progress=False, source=source)
    stage_s = m.timings["total_s"] - m.timings.get("load_s", 0.0)
    stage_ips = n / stage_s
    counts = {k: m.counts.get(k, 0) for k in ("made", "failed")}
    return Row(
        "sdxl", "ok", stage_ips, "images/s",
        f"stage {stage_ips:.2f} vs bare loop {bare_ips:.2f} images/s "
        f"({100 * (stage_ips / bare_ips - 1):+.1f} %); {_count(params)} UNet, {dtype_name}, "
        f"{size} px, {steps} steps, batch {batch}, {n} images (made {counts['made']}, failed "
        f"{counts['failed']}); save {save_s:.0f} s, load {load_s:.0f} s, folder hash "
        f"{hash_s:.0f} s",
        {"stage_images_per_s": stage_ips, "bare_images_per_s": bare_ips,
         "unet_params": float(params), "save_s": save_s, "load_s": load_s, "hash_s": hash_s,
         **{k: float(v) for k, v in counts.items()}},
    )  # fmt: skip


# ------------------------------------------------------------------ flux


def check_flux(s: Settings, work: Path) -> Row:
    import torch
    from diffusers import FluxTransformer2DModel

    cfg = load_config(s, "flux_schnell_transformer.json")
    with torch.device("meta"):
        params = sum(p.numel() for p in FluxTransformer2DModel.from_config(cfg).parameters())
    if s.device == "cuda":
        free, total = torch.cuda.mem_get_info()
        if free < s.flux_free_gib * 2**30:
            return Row("flux", "skipped", note=(
                f"needs ~{s.flux_free_gib:.0f} GiB free ({params / 1e9:.1f} B bf16 weights + "
                f"activations); the GPU has {free / 2**30:.1f} of {total / 2**30:.1f} GiB free"
            ))  # fmt: skip
    dtype = torch.bfloat16
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in bf16 where it runs: no fp32 copy of 12 B weights
    try:
        with torch.device(s.device):
            model = FluxTransformer2DModel.from_config(cfg).eval()
    finally:
        torch.set_default_dtype(default)
    side = s.flux_size // 16  # 8x VAE, then 2 x 2 latent patches per token
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    img_ids = img_ids.reshape(-1, 3).to(s.device)
    txt_ids = torch.zeros(s.flux_text_tokens, 3, device=s.device)
    sigmas = torch.linspace(1.0, 0.0, s.flux_steps + 1).tolist()

    def denoise(b: int) -> None:
        g = torch.Generator(s.device).manual_seed(0)
        x = torch.randn(b, side * side, cfg["in_channels"], generator=g, device=s.device,
                        dtype=dtype)  # fmt: skip
        text = torch.randn(b, s.flux_text_tokens, cfg["joint_attention_dim"], generator=g,
                           device=s.device, dtype=dtype)  # fmt: skip
        pooled = torch.randn(b, cfg["pooled_projection_dim"], generator=g, device=s.device,
                             dtype=dtype)  # fmt: skip
        for i in range(s.flux_steps):
            t = torch.full((b,), sigmas[i], device=s.device, dtype=dtype)
            v = model(hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled,
                      timestep=t, img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]  # fmt: skip
            x = x + (sigmas[i + 1] - sigmas[i]) * v  # flow-matching Euler step

    ips: dict[int, float] = {}
    with torch.inference_mode():
        for b in s.flux_batches:
            denoise(b)  # warm-up
            _sync(s.device)
            t = time.perf_counter()
            for _ in range(s.flux_repeats):
                denoise(b)
            _sync(s.device)
            ips[b] = b * s.flux_repeats / (time.perf_counter() - t)
    step_ms = 1000 / (ips[s.flux_batches[0]] * s.flux_steps) * s.flux_batches[0]
    peak = torch.cuda.max_memory_allocated() / 2**30 if s.device == "cuda" else 0.0
    per_batch = ", ".join(f"batch {b}: {v:.2f}" for b, v in ips.items())
    return Row(
        "flux", "ok", ips[s.flux_batches[0]], "images/s",
        f"transformer only (no T5/CLIP, no VAE); {_count(params)}, bf16, {s.flux_size} px "
        f"({side * side} image + {s.flux_text_tokens} text tokens), {s.flux_steps} steps: "
        f"{step_ms:.0f} ms/step at batch {s.flux_batches[0]}; images/s {per_batch}"
        + (f"; peak {peak:.1f} GiB" if peak else ""),
        {"params": float(params), "step_ms": step_ms, "peak_gib": peak,
         **{f"images_per_s_batch_{b}": v for b, v in ips.items()}},
    )  # fmt: skip


# ------------------------------------------------------------------ train


def write_jpegs(folder: Path, n: int, classes: int, size: tuple[int, int]) -> list[Path]:
    """``n`` photo-like JPEGs (smooth random colour + grain), class ``i % classes``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    w, h = size

    def one(i: int) -> Path:
        rng = np.random.default_rng(i)
        low = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC))
        grain = rng.normal(0, 8, image.shape)
        path = folder / f"c{i % classes:04d}_{i:05d}.jpg"
        Image.fromarray(np.clip(image + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
        return path

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, range(n)))


def _timed_loader(log: list[tuple[list[float], list[float]]]) -> type:
    """The DataLoader class fit builds, recording per step the wait for the batch and the rest."""
    from torch.utils.data import DataLoader

    class TimedLoader(DataLoader):
        def __iter__(self):  # type: ignore[no-untyped-def]
            waits: list[float] = []
            computes: list[float] = []
            log.append((waits, computes))
            it = super().__iter__()
            t = time.perf_counter()
            for batch in it:
                got = time.perf_counter()
                waits.append(got - t)
                yield batch  # the step runs here; fit syncs on the loss before asking again
                t = time.perf_counter()
                computes.append(t - got)

    return TimedLoader


def check_train(s: Settings, work: Path) -> Row:
    import numpy as np
    import torch

    from atlantis.train import loop
    from atlantis.train.config import preset
    from atlantis.train.data import LabelledImages

    paths = write_jpegs(work / "images", s.train_images, s.train_classes, s.jpeg_size)
    labels = np.arange(len(paths), dtype=np.int64) % s.train_classes
    data = LabelledImages(ids=[p.stem for p in paths], paths=paths, labels=labels,
                          synthetic=np.zeros(len(paths), dtype=bool),
                          classes=[f"c{i:04d}" for i in range(s.train_classes)])  # fmt: skip
    cfg = preset("dino", **load_config(s, "dino_vits16.json"), batch_size=s.train_batch,
                 steps=s.train_steps, epochs=1, tensorboard=False, device=s.device)  # fmt: skip
    workers = cfg.loader_workers(torch.device(s.device).type)
    log: list[tuple[list[float], list[float]]] = []
    original = loop.DataLoader
    loop.DataLoader = _timed_loader(log)  # type: ignore[misc]
    try:
        result = loop.fit(cfg, data, None, work / "train", inputs={"check": "gpu_check"},
                          progress=False)  # fmt: skip
    finally:
        loop.DataLoader = original  # type: ignore[misc]
    epoch = result.history[-1]
    waits, computes = log[-1]
    steady_wait, steady_compute = sum(waits[1:]), sum(computes[1:])
    share = steady_wait / max(steady_wait + steady_compute, 1e-9)
    bound = "loader-bound" if share >= 0.1 else "compute-bound"
    compute_ips = cfg.batch_size * len(computes[1:]) / max(steady_compute, 1e-9)
    steady_ips = cfg.batch_size * len(waits[1:]) / max(steady_wait + steady_compute, 1e-9)
    peak = torch.cuda.max_memory_allocated() / 2**30 if s.device == "cuda" else 0.0
    return Row(
        "train", "ok", float(epoch["images_per_s"]), "images/s",
        f"{bound}: after step 1 waits on the loader {100 * share:.0f} % of the time; "
        f"{steady_ips:.0f} images/s after step 1, {compute_ips:.0f} if never waiting; first "
        f"batch {waits[0]:.1f} s; {int(epoch['steps'])} steps of {cfg.batch_size}, "
        f"{cfg.backbone} {cfg.image_size} px, {workers} loader workers (default), "
        f"{len(paths)} JPEGs {s.jpeg_size[0]}x{s.jpeg_size[1]}"
        + (f"; peak {peak:.1f} GiB" if peak else ""),
        {"images_per_s": float(epoch["images_per_s"]), "steady_images_per_s": steady_ips,
         "compute_images_per_s": compute_ips, "loader_wait_share": share,
         "first_batch_s": waits[0], "workers": float(workers), "peak_gib": peak},
    )  # fmt: skip


# ------------------------------------------------------------------ recall


def check_recall(s: Settings, work: Path) -> Row:
    from benchmarks.recall_at_k import make_data

    from atlantis.evaluation import evaluate_retrieval

    x, y = make_data(s.recall_n, s.recall_classes, s.recall_dim, seed=0)
    small_x, small_y = make_data(400, 100, s.recall_dim, seed=1)
    times, results = {}, {}
    for where in dict.fromkeys((s.device, "cpu")):
        evaluate_retrieval(small_x, small_y, ks=(1, 10), device=where)  # CUDA init, numba cache
        _sync(where)
        t = time.perf_counter()
        results[where] = evaluate_retrieval(x, y, ks=s.recall_ks, distance="cosine", device=where)
        times[where] = time.perf_counter() - t
    main, cpu = results[s.device], results["cpu"]
    same = main.recall == cpu.recall
    recall = ", ".join(f"R@{k} {v:.4f}" for k, v in main.recall.items())
    return Row(
        "recall", "ok", times[s.device], "s",
        f"{s.device} {times[s.device]:.2f} s vs cpu {times['cpu']:.2f} s; {len(y):,} x "
        f"{s.recall_dim}, {s.recall_classes:,} classes; {recall}; "
        f"{'same' if same else 'DIFFERENT'} R@K on both",
        {f"{w}_s": v for w, v in times.items()}
        | {f"R@{k}": v for k, v in main.recall.items()} | {"same_as_cpu": float(same)},
    )  # fmt: skip


# ------------------------------------------------------------------ running

CHECKS: dict[str, Callable[[Settings, Path], Row]] = {
    "sdxl": check_sdxl, "flux": check_flux, "train": check_train, "recall": check_recall,
}  # fmt: skip


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_check(name: str, s: Settings) -> Row:
    """One check in its own temporary folder; an exception becomes an error row."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
        try:
            row = CHECKS[name](s, Path(tmp))
        except Exception as exc:  # one failing check must not sink the others
            traceback.print_exc()
            first = (str(exc).splitlines() or [""])[0][:300]
            row = Row(name, "error", note=f"{type(exc).__name__}: {first}")
        finally:
            _free(s.device)
    row.seconds = time.perf_counter() - t
    return row


def format_table(rows: Sequence[Row]) -> str:
    head = ("check", "status", "value", "unit", "time", "details")
    cells = [head] + [
        (r.check, r.status, "" if r.value is None else f"{r.value:.4g}", r.unit,
         f"{r.seconds:.0f} s", r.note)
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    lines = ["  ".join(c[i].ljust(w) for i, w in enumerate(widths)) + "  " + c[-1] for c in cells]
    lines.insert(1, "-" * max(len(line) for line in lines[:1]))
    return "\n".join(lines)


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CHECKS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown check(s) {', '.join(bad) or repr(text)}; valid: {', '.join(CHECKS)}"
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tiny", "--dry-run", action="store_true",
                   help="every check scaled down (benchmarks/configs/tiny), on the CPU")  # fmt: skip
    p.add_argument("--only", type=_names, default=list(CHECKS),
                   help=f"comma-separated checks to run (default all: {','.join(CHECKS)})")  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    import torch

    if not args.tiny and not torch.cuda.is_available():
        print(SKIP_LINE)
        if args.json:
            args.json.write_text(json.dumps({"skipped": SKIP_LINE, "rows": []}, indent=2))
        return 0
    s = TINY if args.tiny else FULL
    where = "CPU, tiny configs" if s.tiny else torch.cuda.get_device_name()
    print(f"gpu_check on {where}; torch {torch.__version__}; checks {','.join(args.only)}",
          flush=True)  # fmt: skip
    rows = []
    for name in args.only:
        rows.append(run_check(name, s))
        print(f"  {name}: {rows[-1].status} in {rows[-1].seconds:.1f} s", flush=True)
    print(format_table(rows))
    if args.json:
        payload = {"device": where, "tiny": s.tiny, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

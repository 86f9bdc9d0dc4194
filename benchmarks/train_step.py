"""Benchmark one DML training step: the framework's loop against a plain PyTorch loop.

Run:  .venv/bin/python benchmarks/train_step.py [--steps 3] [--batch 32] [--skip-cuda]

Measures images/second of forward + backward + optimiser step (pairwise cross-entropy,
AdamW, grad clip 3) on random uint8 pixel batches of m=4 images per class, so the numbers
are the model's and the loop's, not the image decoder's:

* CPU, the offline backbone (EfficientNet-Lite0) at 128 and 224 px, batch 32: head only
  (backbone frozen), the last 2 blocks, and the whole backbone;
* CUDA when available: DINO ViT-S/16's architecture (timm ``vit_small_patch16_224``, random
  weights, patch embedding frozen) at batch 256 with bf16 (fp16 where bf16 is missing).

"framework" runs ``atlantis.train.loop._run_epoch`` (autocast and GradScaler from
``Runtime``, gradient-norm logging, LR scheduler, progress bookkeeping); "plain" is the
textbook loop on the same model and loss. Their ratio is the framework's overhead.
"""

from __future__ import annotations

import argparse
import time

import torch

from atlantis.train import loop
from atlantis.train.config import TrainConfig
from atlantis.train.runtime import Runtime


def batches(n: int, batch: int, size: int, device: torch.device) -> list[tuple]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(batch // 4).repeat_interleave(4)
    return [(torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
             .to(device), labels.to(device)) for _ in range(n)]  # fmt: skip


def framework(cfg: TrainConfig, data: list[tuple]) -> float:
    rt = Runtime(cfg.device, cfg.mixed_precision)
    model, loss_fn, _ = loop.build(cfg, num_classes=len(data[0][1]))
    net = rt.prepare(model)
    loss_fn.to(rt.device)
    optimizer, params = loop._optimizer(cfg, model, loss_fn)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, loop._schedule(cfg, len(data)))

    def epoch(batches: list[tuple]) -> dict:
        return loop._run_epoch(net, loss_fn, batches, optimizer, scheduler, params, rt,
                               cfg.grad_clip, False, 1, 1)  # fmt: skip

    epoch(data[:1])  # warm-up
    _sync(rt.device)
    return epoch(data)["images_per_s"]


def plain(cfg: TrainConfig, data: list[tuple]) -> float:
    device = torch.device(cfg.device)
    model, loss_fn, _ = loop.build(cfg, num_classes=len(data[0][1]))
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(_precision(cfg, device))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            z = model(x)
        loss = loss_fn(z.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        scaler.step(optimizer)
        scaler.update()

    step(*data[0])
    _sync(device)
    t = time.perf_counter()
    for x, y in data:
        step(x, y)
    _sync(device)
    return sum(len(x) for x, _ in data) / (time.perf_counter() - t)


def _precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--skip-cuda", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'setting':58s} {'framework':>10s} {'plain':>10s} {'overhead':>9s}")
    cases = [(size, blocks) for size in (128, 224) for blocks in (0, 2, None)]
    for size, blocks in cases:
        cfg = TrainConfig(image_size=size, trainable_blocks=blocks, batch_size=args.batch,
                          m_per_class=4, device="cpu", tensorboard=False)  # fmt: skip
        data = batches(args.steps, args.batch, size, torch.device("cpu"))
        what = {0: "head only", 2: "last 2 blocks", None: "whole backbone"}[blocks]
        _row(f"cpu efficientnet-lite0 {size}px batch {args.batch}, {what}", cfg, data)
    if torch.cuda.is_available() and not args.skip_cuda:
        cfg = TrainConfig(backbone="timm:vit_small_patch16_224", pretrained=False, image_size=224,
                          batch_size=256, m_per_class=4, device="cuda",
                          tensorboard=False)  # fmt: skip
        data = batches(max(args.steps, 10), 256, 224, torch.device("cuda"))
        _row(f"cuda ViT-S/16 224px batch 256, {_precision(cfg, torch.device('cuda'))}", cfg, data)
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB "
              f"on {torch.cuda.get_device_name()}")  # fmt: skip


def _row(name: str, cfg: TrainConfig, data: list[tuple]) -> None:
    fw, pl = framework(cfg, data), plain(cfg, data)
    print(f"{name:58s} {fw:8.1f}/s {pl:8.1f}/s {100 * (pl / fw - 1):+8.1f}%", flush=True)


if __name__ == "__main__":
    main()

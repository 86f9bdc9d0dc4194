"""Where training runs: one process (CPU or one GPU), or several under accelerate / torchrun.

Launch on several GPUs (DDP) with either of::

    accelerate launch --num_processes 8 -m atlantis.cli.main train RUN --arm baseline
    torchrun --nproc_per_node 8 -m atlantis.cli.main train RUN --arm baseline

or give either launcher the console script instead of ``-m``: ``$(which atlantis) train
RUN``; CPUs work too (gloo), e.g. ``torchrun --nproc_per_node 2``. Several processes need
accelerate (``pip install 'atlantis-augment[dist]'``): ``accelerate.Accelerator`` sets up
the process group, each process's device and the DDP wrapper. Everything else is the same
code as on one CPU, which needs no accelerate at all:

* mixed precision is ``torch.autocast`` plus a ``GradScaler`` for fp16, owned here rather
  than by accelerate, so a single-process run behaves identically with or without it;
* ``gather`` concatenates every process's embeddings for the pairwise loss. Its backward
  all-reduces the gradient and keeps the local slice: each process computes the same loss on
  the global batch, so after DDP averages the parameter gradients they are exactly the
  gradients of that loss (and un-wrapped loss parameters, e.g. proxies, get identical
  gradients everywhere);
* ``batch_size`` is per process; each process takes every ``world_size``-th batch of the
  seeded epoch plan (``data.EpochBatchSampler``);
* only the main process writes checkpoints, metrics and manifests.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from atlantis.embed.base import resolve_device
from atlantis.errors import ConfigError, MissingDependencyError


def _launched_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient over processes and keeps the local part."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), len(x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


class Runtime:
    """Device, precision and process-group plumbing for the training loop."""

    def __init__(self, device: str = "auto", mixed_precision: str = "auto",
                 use_accelerate: bool | None = None) -> None:  # fmt: skip
        available = importlib.util.find_spec("accelerate") is not None
        if use_accelerate is None:
            use_accelerate = available
        if _launched_distributed() and not (use_accelerate and available):
            raise MissingDependencyError("accelerate", "dist", "multi-process training")
        self.accelerator: Any = None
        if use_accelerate:
            from accelerate import Accelerator

            self.accelerator = Accelerator(cpu=device == "cpu", mixed_precision="no")
            self.device = self.accelerator.device
        else:
            self.device = torch.device(resolve_device(device))
        self.precision = self._precision(mixed_precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def _precision(self, requested: str) -> str:
        if requested not in ("auto", "no", "fp16", "bf16"):
            raise ConfigError(f"unknown mixed_precision {requested!r}; valid: auto, no, fp16, bf16")
        if requested != "auto":
            return requested
        if self.device.type != "cuda":
            return "no"  # CPU autocast is slower than float32 for these models
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"

    # -- processes ---------------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes if self.accelerator is not None else 1

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self.accelerator is not None else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wait(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    # -- model and steps ---------------------------------------------------------------------
    def prepare(self, model: nn.Module) -> nn.Module:
        """Move to the device; wrap in DDP when several processes train."""
        model = model.to(self.device)
        if self.accelerator is not None and self.world_size > 1:
            return self.accelerator.prepare_model(model)
        return model

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model.module if hasattr(model, "module") else model

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.precision == "no":
            yield
            return
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            yield

    def gather(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """The global batch: every process's embeddings (with gradient) and labels."""
        if self.world_size == 1:
            return embeddings, labels
        return _GatherWithGrad.apply(embeddings), self.accelerator.gather(labels)

    def step(self, loss: Tensor, optimizer: torch.optim.Optimizer, params: list[Tensor],
             grad_clip: float | None) -> float:  # fmt: skip
        """Backward, unscale, clip, step; returns the gradient norm before clipping."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else float("inf"))
        self.scaler.step(optimizer)
        self.scaler.update()
        return float(norm)

"""Multi-process plumbing: the gathered pairwise loss gives exact full-batch gradients."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from atlantis.train.losses import PairwiseCrossEntropy
from atlantis.train.runtime import Runtime, _GatherWithGrad

DIM, N = 6, 8


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, DIM, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    torch.manual_seed(0)
    return x, labels, torch.nn.Linear(DIM, 4)


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, labels, linear = _data()
    model = torch.nn.parallel.DistributedDataParallel(linear)
    half = slice(rank * N // world, (rank + 1) * N // world)
    z = _GatherWithGrad.apply(model(x[half]))
    loss = PairwiseCrossEntropy(0.2, "cosine")(z, labels)
    loss.backward()
    out[rank] = (float(loss.detach()), linear.weight.grad.clone(), linear.bias.grad.clone())
    dist.destroy_process_group()


def test_gathered_loss_has_the_full_batch_gradient() -> None:
    x, labels, linear = _data()
    loss = PairwiseCrossEntropy(0.2, "cosine")(linear(x), labels)
    loss.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, 29517 + os.getpid() % 1000, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        ddp_loss, w_grad, b_grad = results[rank]
        assert ddp_loss == pytest.approx(float(loss.detach()), abs=1e-6)
        torch.testing.assert_close(w_grad, linear.weight.grad, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(b_grad, linear.bias.grad, atol=1e-6, rtol=1e-5)


def test_single_process_runtime_without_accelerate() -> None:
    rt = Runtime("cpu", "auto", use_accelerate=False)
    assert (rt.world_size, rt.rank, rt.is_main, rt.precision) == (1, 0, True, "no")
    z, y = torch.randn(3, 2), torch.arange(3)
    assert rt.gather(z, y) == (z, y)
    model = torch.nn.Linear(2, 1)
    assert rt.prepare(model) is model and rt.unwrap(model) is model

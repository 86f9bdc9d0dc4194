"""White-box PGD in embedding space (Madry et al. 2018), in [0, 1] pixel space.

A retrieval model has no class scores to attack, so the attack moves each query's
*embedding*: it maximises the model's own distance (Poincaré geodesic or cosine, the one
retrieval ranks by) between the adversarial and the clean embedding of the same image.
A query whose embedding has moved far enough retrieves some other class.

Differences from the ATLANTIS research code, on purpose:

* the perturbation lives in [0, 1] pixel space, *before* the model's normalisation
  (``EmbeddingModel`` normalises itself), so ``eps`` means the same for every backbone and
  the adversarial images are valid images (clamped to [0, 1] after every step);
* an explicit step size (default ``2.5 * eps / steps``, Madry's rule, instead of
  ``eps / steps``, which cannot reach the boundary from a random start) and a random start
  uniform in the eps ball;
* the objective is the distance to the query's own clean embedding, not to a random other
  embedding of the batch: the result does not depend on how queries are batched.

Gradients are taken with respect to the input only: parameters are frozen for the
duration of the attack (no parameter gradients are computed or kept) and the model runs in
eval mode (fixed BatchNorm statistics, no dropout); both are restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from atlantis.train.hyperbolic import dist as poincare_dist


def embedding_distance(a: Tensor, b: Tensor, distance: str, curvature: float = 0.1) -> Tensor:
    """Differentiable distance between matching rows of ``a`` and ``b`` (shape ``[n]``).

    The same distances as ``atlantis.evaluation.distances`` (which ranks by cheap keys and
    has no gradients): ``poincare`` is the geodesic distance on the ball of curvature
    ``-curvature`` (``atlantis.train.hyperbolic.dist``), ``cosine`` is ``1 - cos``.
    """
    if distance == "poincare":
        return poincare_dist(a, b, curvature)
    if distance == "cosine":
        return 1 - nn.functional.cosine_similarity(a, b, dim=-1)
    if distance == "euclidean":
        return (a - b).norm(dim=-1)
    raise ValueError(f"unknown distance {distance!r}; valid: cosine, euclidean, poincare")


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside; the previous state is restored after."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _as_pixels(images: Tensor) -> Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images: expected [B, 3, H, W], got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise ValueError(f"images: expected float pixels in [0, 1] or uint8, got {images.dtype}")
    x = images.float()
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"images: float pixels must lie in [0, 1] (before normalisation), got range "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]; divide uint8 images by 255"
        )
    return x


def pgd_attack(model: nn.Module, images: Tensor, *, eps: float, steps: int,
               step_size: float | None = None, generator: torch.Generator | None = None,
               start: Tensor | None = None,
               clean_embeddings: Tensor | None = None) -> Tensor:  # fmt: skip
    """Adversarial versions of ``images``: in [0, 1], with ``|adv - images|_inf <= eps``.

    Args:
        model: an ``EmbeddingModel`` (pixels in [0, 1] -> embeddings), with ``distance``
            and ``curvature`` attributes (plain modules are compared by cosine).
        images: ``[B, 3, H, W]`` float pixels in [0, 1] (or uint8, divided by 255).
        eps: L-inf bound, a fraction of the pixel range, in (0, 1].
        steps: sign-gradient ascent steps; 0 returns the random start (uniform noise in
            the eps ball: the non-adversarial control).
        step_size: per-step size in pixel units; ``None``: ``2.5 * eps / steps``.
        generator: draws the random start (on its own device); ``None``: torch's global one.
        start: the random start itself, ``[B, 3, H, W]`` in [-1, 1] (scaled by ``eps``),
            instead of drawing it; lets a caller make each image's start independent of
            how images are batched.
        clean_embeddings: the model's embeddings of ``images``, when the caller has them.
    """
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1] (a fraction of the pixel range), got {eps}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0 or None, got {step_size}")
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    x = _as_pixels(images)
    if start is None:
        device = generator.device if generator is not None else x.device
        start = torch.rand(x.shape, generator=generator, device=device) * 2 - 1
    elif start.shape != x.shape:
        raise ValueError(f"start: expected shape {tuple(x.shape)}, got {tuple(start.shape)}")
    distance = getattr(model, "distance", "cosine")
    curvature = getattr(model, "curvature", 0.0) or 0.1
    lower, upper = (x - eps).clamp_min(0), (x + eps).clamp_max(1)
    adv = torch.min(torch.max(x + eps * start.to(x.device, x.dtype), lower), upper)
    with frozen_eval(model):
        if clean_embeddings is None:
            with torch.no_grad():
                clean_embeddings = model(x)
        clean = clean_embeddings.detach().float()
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = embedding_distance(model(adv).float(), clean, distance, curvature).sum()
            (grad,) = torch.autograd.grad(loss, adv)
            # A zero-norm corner of the distance can give NaN: no step there, not a NaN image.
            step = alpha * torch.nan_to_num(grad, nan=0.0).sign()
            adv = torch.min(torch.max(adv.detach() + step, lower), upper)
    return adv.detach()

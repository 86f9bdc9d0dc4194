"""Losses by name: hyp_metric's pairwise cross-entropy, or any pytorch-metric-learning loss.

``pairwise_ce`` (the default, the loss of hyp_metric and ATLANTIS): every ordered pair of
distinct same-class samples (a, p) in the batch is a positive pair; its loss is the
cross-entropy of picking p among {p} ∪ {all samples of other classes} from the logits
``-d(a, x) / tau`` (hyperbolic distance in the ball) or ``cos(a, x) / tau`` (sphere). The
other positives of a are left out of its denominator, so they do not compete with p. The
loss is the mean over all positive pairs.

hyp_metric's ``contrastive_loss(x0, x1)`` is called for every pair of sample slots (i, j) of
a batch laid out as classes x m, and its denominators hold the negatives of slots i and j
only; with m = 2 that is every negative, and the two losses are equal (tested). For m > 2
this loss uses every negative in the batch, which does not depend on how the batch is laid
out, so it also works for batches with uneven class counts and for gathered multi-GPU
batches.

``pml:<LossName>`` builds ``pytorch_metric_learning.losses.<LossName>(**loss_options)``, with
``num_classes`` and ``embedding_size`` filled in for proxy / classifier losses (whose
parameters then train with the head); ``miner="pml:<MinerName>"`` adds a miner. A sample
whose class has no other member in the batch has no positive pair: it only serves as a
negative (pml does the same).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from atlantis.errors import ConfigError
from atlantis.train.hyperbolic import dist_matrix

OWN_LOSSES = ("pairwise_ce",)


class PairwiseCrossEntropy(nn.Module):
    """hyp_metric's pairwise cross-entropy over all same-class pairs of a batch."""

    def __init__(self, tau: float = 0.2, distance: str = "poincare", curvature: float = 0.1):
        super().__init__()
        if distance not in ("poincare", "cosine"):
            raise ConfigError(
                f"pairwise_ce: unknown distance {distance!r}; valid: poincare, cosine"
            )
        if not tau > 0:
            raise ConfigError(f"pairwise_ce: tau must be > 0, got {tau!r}")
        self.tau, self.distance, self.curvature = tau, distance, curvature

    def logits(self, z: Tensor) -> Tensor:
        """``[n, n]`` similarity logits (larger = closer) of every pair in the batch."""
        if self.distance == "poincare":
            return -dist_matrix(z, z, self.curvature) / self.tau
        unit = nn.functional.normalize(z, dim=-1)
        return unit @ unit.T / self.tau

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
            raise ValueError(
                f"expected embeddings [n, d] and labels [n], got {tuple(embeddings.shape)} "
                f"and {tuple(labels.shape)}"
            )
        sim = self.logits(embeddings.float())
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        anchors, positives = torch.nonzero(same & ~eye, as_tuple=True)
        if anchors.numel() == 0:
            return sim.sum() * 0.0  # no positive pair in this batch: nothing to learn
        # log(e^s_ap + sum_n e^s_an) - s_ap = softplus(logsumexp_n(s_an) - s_ap)
        # A large finite fill, not -inf: a row without negatives must keep finite gradients.
        neg_lse = torch.logsumexp(sim.masked_fill(same, -1e9), dim=1)
        pos = sim[anchors, positives]
        return nn.functional.softplus(neg_lse[anchors] - pos).mean()


class PMLLoss(nn.Module):
    """A pytorch-metric-learning loss (and optional miner) behind ``loss(embeddings, labels)``."""

    def __init__(self, loss: nn.Module, miner: nn.Module | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        embeddings = embeddings.float()
        indices = self.miner(embeddings, labels) if self.miner is not None else None
        return self.loss(embeddings, labels, indices)


def _pml_classes(module_name: str, base_name: str) -> dict[str, type]:
    import importlib

    module = importlib.import_module(f"pytorch_metric_learning.{module_name}")
    base = getattr(module, base_name)
    skip = {base_name, "GenericPairLoss", "BaseLossWrapper", "VICRegLoss",
            "EmbeddingsAlreadyPackagedAsTriplets"}  # fmt: skip
    return {n: c for n, c in vars(module).items()
            if isinstance(c, type) and issubclass(c, base) and n not in skip}  # fmt: skip


def loss_names() -> list[str]:
    """Every valid ``loss`` value."""
    return [
        *OWN_LOSSES,
        *(f"pml:{n}" for n in sorted(_pml_classes("losses", "BaseMetricLossFunction"))),
    ]


def _lookup(spec: str, module: str, base: str, role: str, valid: list[str]) -> type:
    name = spec.removeprefix("pml:")
    classes = _pml_classes(module, base)
    if name not in classes:
        raise ConfigError(f"unknown {role} {spec!r}; valid: {', '.join(valid)}")
    return classes[name]


def _construct(cls: type, options: dict[str, Any], role: str) -> nn.Module:
    try:
        return cls(**options)
    except TypeError as exc:
        params = [
            p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")
        ]
        raise ConfigError(
            f"{role} {cls.__name__}: {exc}; its options are: {', '.join(params)}"
        ) from None


def build_loss(name: str = "pairwise_ce", options: dict[str, Any] | None = None, *,
               distance: str = "poincare", curvature: float = 0.1, tau: float = 0.2,
               num_classes: int | None = None, embedding_dim: int | None = None,
               miner: str | None = None, miner_options: dict[str, Any] | None = None,
               ) -> nn.Module:  # fmt: skip
    """The loss module named ``name``; call it as ``loss(embeddings, labels)``.

    Its ``parameters()`` (proxies, class centres) must join the optimiser.
    """
    options = dict(options or {})
    if name == "pairwise_ce":
        if miner is not None:
            raise ConfigError("pairwise_ce uses every pair of the batch; remove the miner")
        tau = options.pop("tau", tau)
        if options:
            raise ConfigError(f"pairwise_ce: unknown options {sorted(options)}; its option is tau")
        return PairwiseCrossEntropy(tau, distance, curvature)
    if not name.startswith("pml:"):
        raise ConfigError(f"unknown loss {name!r}; valid: {', '.join(loss_names())}")
    cls = _lookup(name, "losses", "BaseMetricLossFunction", "loss", loss_names())
    wanted = inspect.signature(cls.__init__).parameters
    if "num_classes" in wanted and "num_classes" not in options:
        if num_classes is None:
            raise ConfigError(f"{name} needs num_classes")
        options["num_classes"] = num_classes
    if "embedding_size" in wanted and "embedding_size" not in options:
        options["embedding_size"] = embedding_dim
    miner_module = None
    if miner is not None:
        miner_names = [f"pml:{n}" for n in sorted(_pml_classes("miners", "BaseMiner"))]
        miner_cls = _lookup(miner, "miners", "BaseMiner", "miner", miner_names)
        miner_module = _construct(miner_cls, dict(miner_options or {}), "miner")
    return PMLLoss(_construct(cls, options, "loss"), miner_module)

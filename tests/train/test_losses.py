"""The pairwise cross-entropy (vs hyp_metric's formulation) and pml losses by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from atlantis.errors import ConfigError
from atlantis.train.hyperbolic import ToPoincare, dist_matrix
from atlantis.train.losses import PairwiseCrossEntropy, PMLLoss, build_loss, loss_names


def hyp_metric_contrastive(
    x0: torch.Tensor, x1: torch.Tensor, tau: float, c: float
) -> torch.Tensor:
    """hyp_metric's ``contrastive_loss(x0, x1, tau, hyp_c)``: rows of x0 and x1 are positives."""

    def sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if c == 0:
            return F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()
        return -dist_matrix(a, b, c)

    n = len(x0)
    target = torch.arange(n)
    eye_mask = torch.eye(n) * 1e9
    logits00 = sim(x0, x0) / tau - eye_mask
    logits01 = sim(x0, x1) / tau
    logits11 = sim(x1, x1) / tau - eye_mask
    logits10 = sim(x1, x0) / tau
    return (F.cross_entropy(torch.cat([logits01, logits00], dim=1), target)
            + F.cross_entropy(torch.cat([logits10, logits11], dim=1), target)) / 2  # fmt: skip


@pytest.mark.parametrize(("distance", "c"), [("cosine", 0.0), ("poincare", 0.1)])
def test_equals_hyp_metric_for_two_samples_per_class(distance: str, c: float) -> None:
    torch.manual_seed(0)
    z = torch.randn(8, 2, 16)  # 8 classes x m=2, hyp_metric's [classes, samples, dim] layout
    if c:
        z = ToPoincare(c, 2.3)(z)
    reference = hyp_metric_contrastive(z[:, 0], z[:, 1], 0.2, c)
    labels = torch.arange(8).repeat_interleave(2)
    ours = PairwiseCrossEntropy(0.2, distance, c or 0.1)(z.reshape(16, -1), labels)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("distance", ["cosine", "poincare"])
def test_separated_classes_have_low_loss_and_finite_gradients(distance: str) -> None:
    torch.manual_seed(0)
    centres = torch.eye(6, 16) * 3
    labels = torch.arange(6).repeat_interleave(4)
    separated = (centres[labels] + 0.01 * torch.randn(24, 16)).requires_grad_()
    mixed = torch.randn(24, 16).requires_grad_()
    loss = PairwiseCrossEntropy(0.2, distance, 0.1)
    head = ToPoincare(0.1, 2.3) if distance == "poincare" else torch.nn.Identity()
    low, high = loss(head(separated), labels), loss(head(mixed), labels)
    assert low < 0.2 < 1.0 < high  # cosine: bounded below by log(1 + 20 e^(-1/tau))
    (low + high).backward()
    assert torch.isfinite(separated.grad).all() and torch.isfinite(mixed.grad).all()


def test_batch_without_positive_pairs_gives_zero_with_a_graph() -> None:
    z = torch.randn(4, 8, requires_grad=True)
    loss = PairwiseCrossEntropy(0.2, "cosine")(z, torch.arange(4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


def test_singletons_only_act_as_negatives_and_one_class_batches_stay_finite() -> None:
    z = torch.randn(6, 8, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 3])  # 2 and 3 have no positive
    loss = PairwiseCrossEntropy(0.2, "poincare", 0.1)(ToPoincare()(z), labels)
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad[4:].abs().sum() > 0  # used as negatives
    same = torch.randn(4, 8, requires_grad=True)  # every pair positive, no negative at all
    PairwiseCrossEntropy(0.2, "cosine")(same, torch.zeros(4, dtype=torch.long)).backward()
    assert torch.isfinite(same.grad).all()


def test_pml_losses_by_name() -> None:
    torch.manual_seed(0)
    z, labels = torch.randn(12, 8, requires_grad=True), torch.arange(4).repeat_interleave(3)
    proxy = build_loss("pml:ProxyAnchorLoss", num_classes=4, embedding_dim=8)
    assert isinstance(proxy, PMLLoss) and sum(p.numel() for p in proxy.parameters()) == 32
    triplet = build_loss("pml:TripletMarginLoss", {"margin": 0.1},
                         miner="pml:TripletMarginMiner", miner_options={"margin": 0.2})  # fmt: skip
    ms = build_loss("pml:MultiSimilarityLoss")
    for loss in (proxy, triplet, ms):
        value = loss(z, labels)
        assert value.ndim == 0 and torch.isfinite(value)
    assert "pml:ProxyAnchorLoss" in loss_names() and loss_names()[0] == "pairwise_ce"


def test_unknown_names_and_options_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid: pairwise_ce, pml:AngularLoss"):
        build_loss("triplet")
    with pytest.raises(ConfigError, match=r"valid: .*pml:TripletMarginMiner"):
        build_loss("pml:TripletMarginLoss", miner="pml:NoSuchMiner")
    with pytest.raises(ConfigError, match=r"its options are: .*margin"):
        build_loss("pml:TripletMarginLoss", {"margn": 0.1})
    with pytest.raises(ConfigError, match="its option is tau"):
        build_loss("pairwise_ce", {"temperature": 0.1})
    with pytest.raises(ConfigError, match="remove the miner"):
        build_loss("pairwise_ce", miner="pml:TripletMarginMiner")

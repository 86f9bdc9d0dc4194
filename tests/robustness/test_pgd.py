"""``pgd_attack`` on tiny random models: the eps ball, [0, 1], strength, determinism."""

from __future__ import annotations

import pytest
import torch

from atlantis.evaluation.distances import pairwise_distances
from atlantis.robustness.pgd import embedding_distance, pgd_attack
from atlantis.train.model import EmbeddingModel, build_model


@pytest.fixture(scope="module", params=["poincare", "sphere"])
def model(request: pytest.FixtureRequest) -> EmbeddingModel:
    return build_model("timm:test_vit", pretrained=False, image_size=32, embedding_dim=16,
                       head=request.param).eval()  # fmt: skip


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    x[0] = 0.0  # saturated images: the box [0, 1] binds, not the ball
    x[1] = 1.0
    return x


def shift(model: EmbeddingModel, adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return embedding_distance(model(adv), model(x), model.distance, model.curvature or 0.1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("steps", "eps", "step_size"),
                         [(1, 0.05, None), (10, 0.1, None), (3, 0.5, 0.3), (0, 0.2, None)])  # fmt: skip
def test_adversarial_images_stay_in_the_eps_ball_and_in_0_1(model, steps, eps, step_size) -> None:
    x = images()
    adv = pgd_attack(model, x, eps=eps, steps=steps, step_size=step_size, generator=gen())
    assert adv.shape == x.shape and adv.dtype == torch.float32
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert not torch.equal(adv, x)  # it did move


def test_pgd_moves_the_embedding_far_more_than_random_noise_of_the_same_size(model) -> None:
    x = images()[2:]
    for eps in (0.01, 0.05):
        noise = shift(model, pgd_attack(model, x, eps=eps, steps=0, generator=gen()), x)
        one = shift(model, pgd_attack(model, x, eps=eps, steps=1, generator=gen()), x)
        ten = shift(model, pgd_attack(model, x, eps=eps, steps=10, generator=gen()), x)
        assert (one > 3 * noise).all(), (eps, noise, one)
        assert ten.mean() > one.mean()


def test_same_seed_same_attack_other_seed_other_attack(model) -> None:
    x = images()
    a = pgd_attack(model, x, eps=0.1, steps=3, generator=gen(7))
    b = pgd_attack(model, x, eps=0.1, steps=3, generator=gen(7))
    c = pgd_attack(model, x, eps=0.1, steps=3, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_an_explicit_start_replaces_the_generator(model) -> None:
    x = images()
    start = torch.rand(x.shape, generator=gen(3)) * 2 - 1
    a = pgd_attack(model, x, eps=0.1, steps=2, start=start, generator=gen(1))
    b = pgd_attack(model, x, eps=0.1, steps=2, start=start, generator=gen(2))
    assert torch.equal(a, b)
    # per-image: attacking a sub-batch gives the same images (no cross-batch coupling)
    part = pgd_attack(model, x[2:4], eps=0.1, steps=2, start=start[2:4])
    torch.testing.assert_close(part, a[2:4], atol=1e-6, rtol=0)


def test_uint8_pixels_are_the_same_as_their_float_values(model) -> None:
    x8 = (images() * 255).round().to(torch.uint8)
    a = pgd_attack(model, x8, eps=0.1, steps=2, generator=gen())
    b = pgd_attack(model, x8.float() / 255, eps=0.1, steps=2, generator=gen())
    assert torch.equal(a, b)


def test_the_model_keeps_its_mode_and_gets_no_parameter_gradients(model) -> None:
    model.train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.linear.requires_grad_(True)
    pgd_attack(model, images(), eps=0.1, steps=2, generator=gen())
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert model.linear.weight.requires_grad
    model.eval()
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_eval_mode_inside_the_attack(model) -> None:
    """Dropout would make the gradient random: the attack must run the model in eval mode."""
    model.train()
    seen = []
    handle = model.register_forward_pre_hook(lambda m, _: seen.append(m.training))
    try:
        pgd_attack(model, images(), eps=0.1, steps=2, generator=gen())
    finally:
        handle.remove()
        model.eval()
    assert seen and not any(seen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"eps": 0.0, "steps": 1}, "eps must be in"), ({"eps": 1.5, "steps": 1}, "eps must be in"),
     ({"eps": 0.1, "steps": -1}, "steps must be"),
     ({"eps": 0.1, "steps": 1, "step_size": 0.0}, "step_size")],
)  # fmt: skip
def test_bad_arguments_are_refused(model, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        pgd_attack(model, images(), **kwargs)


def test_pixels_outside_0_1_are_refused_with_the_fix(model) -> None:
    with pytest.raises(ValueError, match="divide uint8 images by 255"):
        pgd_attack(model, images() * 255, eps=0.1, steps=1)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        pgd_attack(model, images()[0], eps=0.1, steps=1)


@pytest.mark.parametrize("name", ["poincare", "cosine", "euclidean"])
def test_embedding_distance_agrees_with_the_evaluation_distances(name: str) -> None:
    g = gen(5)
    a, b = torch.randn(7, 16, generator=g) * 0.4, torch.randn(7, 16, generator=g) * 0.4
    ours = embedding_distance(a, b, name, curvature=0.1)
    theirs = pairwise_distances(a, b, name, curvature=0.1).diagonal()
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="valid: cosine, euclidean, poincare"):
        embedding_distance(a, b, "manhattan")

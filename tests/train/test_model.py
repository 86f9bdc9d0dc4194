"""Backbones by name, the heads, freezing, transforms, and the trunk split used for caching."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from atlantis.errors import ConfigError
from atlantis.train.model import (
    build_model,
    freeze,
    image_transforms,
    load_backbone,
    model_from_info,
)
from atlantis.train.trunk import split_backbone


def test_efficientnet_backbone_uses_its_own_scaling_and_the_heads() -> None:
    model = build_model("efficientnet-lite0", image_size=64, embedding_dim=8, head="sphere")
    assert model.info["mean"] == pytest.approx([127 / 255] * 3)
    assert model.info["std"] == pytest.approx([128 / 255] * 3)
    pixels = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        z = model.eval()(pixels)
        same = model(pixels.float() / 255)  # uint8 and [0, 1] floats are the same pixels
    assert z.shape == (2, 8) and model.distance == "cosine"
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(z, same)
    ball = build_model("timm:test_vit", pretrained=False, image_size=32, head="poincare",
                       curvature=0.1, clip_r=2.3)  # fmt: skip
    with torch.no_grad():
        zb = ball.eval()(torch.rand(3, 3, 32, 32))
    assert ball.distance == "poincare" and ball.curvature == 0.1
    assert (zb.norm(dim=-1) < 1 / 0.1**0.5).all()


def test_unknown_backbone_lists_the_valid_forms() -> None:
    with pytest.raises(ConfigError, match=r"valid: efficientnet-lite0.*timm:<model name>"):
        load_backbone("resnet50")
    with pytest.raises(ConfigError, match="timm has no model"):
        load_backbone("timm:no_such_model_xyz")


def test_same_seed_same_initial_head() -> None:
    a = build_model("timm:test_vit", pretrained=False, image_size=32, seed=3)
    b = build_model("timm:test_vit", pretrained=False, image_size=32, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(),
                                                 strict=True))  # fmt: skip


def test_freezing_the_last_blocks_and_frozen_batchnorm_stays_in_eval_mode() -> None:
    model = build_model("efficientnet-lite0", image_size=64, embedding_dim=8)
    counts = freeze(model, trainable_blocks=2)
    net = model.backbone.net
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.net._blocks.15.") for n in trainable)
    assert any(n.startswith("backbone.net._blocks.14.") for n in trainable)
    assert not any(n.startswith("backbone.net._blocks.13.") for n in trainable)
    assert "backbone.net._conv_head.weight" in trainable and "linear.weight" in trainable
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())
    model.train()
    assert not net._bn0.training and not net._blocks[13].training
    assert net._blocks[15].training and model.linear.training
    head_only = freeze(model, trainable_blocks=0)
    assert head_only["trainable"] == sum(p.numel() for p in model.linear.parameters())
    assert freeze(model, None)["frozen"] == 0


def test_vit_patch_embedding_frozen_by_default() -> None:
    model = build_model("timm:test_vit", pretrained=False, image_size=32)
    freeze(model, None, freeze_patch_embed=True)
    assert not model.backbone.patch_embed.proj.weight.requires_grad
    assert model.backbone.blocks[0].attn.qkv.weight.requires_grad
    freeze(model, 1)
    assert not model.backbone.blocks[-2].attn.qkv.weight.requires_grad
    assert model.backbone.blocks[-1].attn.qkv.weight.requires_grad
    assert model.backbone.norm.weight.requires_grad  # after the last block: trains


@pytest.mark.parametrize(("name", "size"), [("efficientnet-lite0", 64), ("timm:test_vit", 32)])
def test_trunk_then_rest_is_the_backbone(name: str, size: int) -> None:
    model = build_model(name, pretrained=name.startswith("eff"), image_size=size).eval()
    freeze(model, 2)
    trunk, rest = split_backbone(model, 2)
    x = model.normalize(torch.rand(2, 3, size, size))
    with torch.no_grad():
        torch.testing.assert_close(rest(trunk(x)), model.backbone(x), atol=0, rtol=0)


def test_model_rebuilds_from_its_info_without_weights() -> None:
    model = build_model("timm:test_vit", pretrained=False, image_size=32, embedding_dim=8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    again = model_from_info(model.info)
    again.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), model.eval()(x))


def test_transformers_backbone_from_a_local_folder(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=32, image_size=32, patch_size=8)  # fmt: skip
    transformers.ViTModel(config).save_pretrained(tmp_path / "vit")
    model = build_model(f"transformers:{tmp_path / 'vit'}", embedding_dim=8, head="sphere")
    assert model.image_size == 32 and model.info["kind"] == "transformers"
    freeze(model, 1)
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable and all(
        ".1." in n or n.split(".")[1] in ("layernorm", "pooler") for n in trainable
    )  # the last layer and what follows it
    again = model_from_info(model.info)  # from the stored config dict: no folder needed
    again.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), model.eval()(x))


def test_transforms_give_exact_size_uint8() -> None:
    image = Image.new("RGBA", (50, 30), (0, 0, 0, 0))
    for train in (True, False):
        out = image_transforms(40, train=train)(image)
        assert out.shape == (3, 40, 40) and out.dtype == torch.uint8
    assert (image_transforms(40, train=False)(image) == 255).all()  # transparent -> white


def test_orthogonal_head_starts_with_the_backbone_ranking() -> None:
    from atlantis.evaluation.distances import pairwise_distances

    for head in ("sphere", "poincare"):
        model = build_model("timm:test_vit", pretrained=False, image_size=32, embedding_dim=64,
                            head=head, head_init="orthogonal").eval()  # fmt: skip
        x = torch.rand(6, 3, 32, 32)
        with torch.no_grad():
            features = model.backbone(model.normalize(x))
            z = model(x)
        before = pairwise_distances(features, features, "cosine").argsort(dim=1)
        after = pairwise_distances(z.double(), z.double(), model.distance).argsort(dim=1)
        assert torch.equal(before, after)
    with pytest.raises(ConfigError, match="head_init"):
        build_model("timm:test_vit", pretrained=False, image_size=32, head_init="eye")


# -- train.pretrained: a file must be a checkpoint of the backbone ---------------------------------


def _test_vit_weights(tmp_path, name: str = "w.pt"):
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)  # not timm's seed-0 init: the file changes every tensor
        module = timm.create_model("test_vit", num_classes=0)
    torch.save(module.state_dict(), tmp_path / name)
    return module, tmp_path / name


def test_a_timm_weights_file_is_loaded(tmp_path) -> None:
    from safetensors.torch import save_file

    from atlantis.train.model import weights_format

    module, file = _test_vit_weights(tmp_path)
    save_file(module.state_dict(), tmp_path / "w.safetensors")
    assert weights_format(file) == "torch"
    assert weights_format(tmp_path / "w.safetensors") == "safetensors"
    for weights in (file, tmp_path / "w.safetensors"):
        model = build_model("timm:test_vit", pretrained=str(weights), image_size=32)
        loaded = model.backbone.state_dict()
        # every tensor is the file's (pos_embed resampled from 160 px to the 32 px asked for)
        assert all(torch.equal(loaded[k], v) for k, v in module.state_dict().items()
                   if k != "pos_embed")  # fmt: skip
        assert loaded["pos_embed"].shape == (1, 5, 64)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"these are not weights\n", "is not a checkpoint"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "is not a checkpoint"),
        (b"", "is not a checkpoint"),
    ],
    ids=["text", "png", "empty"],
)
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, content, words) -> None:
    from atlantis.train.model import check_weights_file

    (tmp_path / "weights.pt").write_bytes(content)
    with pytest.raises(ConfigError, match=rf"train.pretrained: .*weights.pt {words}.*torch.save"):
        build_model("timm:test_vit", pretrained=str(tmp_path / "weights.pt"), image_size=32)
    with pytest.raises(ConfigError, match="not found"):
        check_weights_file(str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="is a folder"):
        check_weights_file(str(tmp_path))


def test_weights_of_another_model_or_misnamed_are_refused(tmp_path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.save(timm.create_model("resnet18", num_classes=0).state_dict(), tmp_path / "r.pt")
    with pytest.raises(ConfigError, match=r"r.pt: none of its tensors fit timm:test_vit"):
        build_model("timm:test_vit", pretrained=str(tmp_path / "r.pt"), image_size=32)
    module, _ = _test_vit_weights(tmp_path)
    save_file(module.state_dict(), tmp_path / "st.pt")
    with pytest.raises(ConfigError, match=r"st.pt holds safetensors .* name it \*.safetensors"):
        build_model("timm:test_vit", pretrained=str(tmp_path / "st.pt"), image_size=32)


@pytest.mark.parametrize("backbone", ["efficientnet-lite0", "transformers:some/model"])
def test_a_weights_file_for_a_backbone_that_takes_none_is_refused(tmp_path, backbone) -> None:
    """These backbones used to ignore the file and train from their own weights."""
    _, file = _test_vit_weights(tmp_path)
    with pytest.raises(ConfigError, match=r"train.pretrained: .*w.pt.*timm:<name> backbones only"):
        build_model(backbone, pretrained=str(file))

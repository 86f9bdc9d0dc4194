"""Source contract pieces: addresses, derived seeds, the registry, the config, PNG provenance."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from atlantis.errors import ConfigError
from atlantis.generate.base import ItemSpec, SourceResult, derive_seed
from atlantis.generate.config import RUNTIME_KEYS, GenerateConfig
from atlantis.generate.outputs import encode_png, image_relpath, read_png_info
from atlantis.generate.registry import create_source, list_sources
from atlantis.store.run import config_hash
from tests.generate.conftest import FakeSource

ITEM = ItemSpec(id="a", class_name="cat", description="a cat", seed=3, domain="snow")


def test_address_is_a_pure_function_of_the_request() -> None:
    src = FakeSource()
    assert src.address(ITEM) == FakeSource().address(ITEM) and len(src.address(ITEM)) == 64
    same_request = ItemSpec(id="other-id", class_name="dog", description="a cat", seed=3)
    assert src.address(same_request) == src.address(ITEM)  # label and id are not the request
    assert FakeSource(tag="v2").address(ITEM) != src.address(ITEM)
    assert image_relpath("naive", "ab12") == "generate/naive/images/ab/ab12.png"


def test_derived_seeds_are_deterministic_distinct_and_63_bit() -> None:
    assert derive_seed(7, 0) == 7
    seeds = {derive_seed(7, k) for k in range(1, 50)} | {derive_seed(8, 1)}
    assert len(seeds) == 50 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(7, 3) == derive_seed(7, 3)


def test_png_carries_provenance_and_encodes_deterministically(tmp_path: Path) -> None:
    info = {"address": "ff", "seed": 1, "params": {"k": "é"}}
    image = Image.new("RGBA", (4, 4), (1, 2, 3, 4))
    data = encode_png(image, info)
    assert data == encode_png(image.copy(), dict(info))
    (tmp_path / "x.png").write_bytes(data)
    assert read_png_info(tmp_path / "x.png") == info
    (tmp_path / "cut.png").write_bytes(data[:-20])
    assert read_png_info(tmp_path / "cut.png") is None
    assert read_png_info(tmp_path / "missing.png") is None


def test_registry_names_and_errors() -> None:
    assert set(list_sources()) == {"diffusers:<model>", "retrieve"}
    with pytest.raises(ConfigError, match="unknown image source 'dall-e'; valid names: diffusers"):
        create_source("dall-e:3")
    with pytest.raises(ConfigError, match=r"needs a model: 'diffusers:<hub id or folder>'"):
        create_source("diffusers")
    assert create_source("diffusers:org/model-turbo").steps == 4  # construction is cheap


def test_config_validation_and_runtime_keys() -> None:
    with pytest.raises(ValidationError):
        GenerateConfig(executor="spark")
    with pytest.raises(ValidationError):
        GenerateConfig(batch_sise=3)
    a = GenerateConfig()
    b = GenerateConfig(batch_size=16, executor="ray", device="cuda",
                       ray={"num_actors": 8, "address": "auto"})  # fmt: skip
    assert config_hash(a, RUNTIME_KEYS) == config_hash(b, RUNTIME_KEYS)
    assert config_hash(a, RUNTIME_KEYS) != config_hash(
        GenerateConfig(dtype="float32"), RUNTIME_KEYS
    )


def test_a_pickled_source_forgets_its_device_and_models() -> None:
    src = FakeSource()
    assert src.device == "cpu"
    copy = pickle.loads(pickle.dumps(src))
    assert copy._device is None and not copy._loaded and copy.identity == src.identity
    assert SourceResult(image=None, error="x").ok is False

"""The train section: validation, presets, and which keys a checkpoint must match."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from atlantis.errors import ConfigError
from atlantis.train.config import PRESETS, RUNTIME_KEYS, TrainConfig, preset


def test_presets_are_valid_and_runtime_keys_do_not_bind_checkpoints() -> None:
    for name in PRESETS:
        assert preset(name).model_dump()
    assert preset("demo", epochs=3).epochs == 3
    cfg = TrainConfig()
    assert not RUNTIME_KEYS & set(cfg.training_dict())
    assert "feedback_k" not in cfg.training_dict() and "lr" in cfg.training_dict()
    with pytest.raises(ConfigError, match="valid: dino, demo"):
        preset("fast")


def test_invalid_combinations_say_why() -> None:
    with pytest.raises(ValidationError, match="multiple of m_per_class"):
        TrainConfig(batch_size=10, m_per_class=3)
    with pytest.raises(ValidationError, match="cache_trunk needs augment=false"):
        TrainConfig(cache_trunk=True, trainable_blocks=2)
    with pytest.raises(ValidationError, match="extra"):
        TrainConfig(learning_rate=1e-3)


def test_loader_workers_default_to_none_on_the_cpu_and_several_beside_a_gpu(monkeypatch) -> None:
    import os

    from atlantis.train.config import TrainConfig

    cfg = TrainConfig()
    assert cfg.num_workers is None and cfg.loader_workers("cpu") == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert cfg.loader_workers("cuda") == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert cfg.loader_workers("cuda") == 1
    assert TrainConfig(num_workers=3).loader_workers("cuda") == 3  # set: used as is
    assert TrainConfig(num_workers=0).loader_workers("cuda") == 0


def test_dino_preset_inits_the_head_as_hyp_metric() -> None:
    from atlantis.train.config import preset

    assert preset("dino").head_init == "orthogonal"  # orthogonal weight, zero bias

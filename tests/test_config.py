import pytest

from atlantis.config import AtlantisConfig, load_config, save_config
from atlantis.errors import ConfigError


def test_defaults_file_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("embed:\n  batch_size: 8\neval:\n  ks: [8, 1, 2]\n")
    cfg = load_config(f, ["embed.device=cuda", "data.val_fraction=0.2"])
    assert cfg.embed.batch_size == 8 and cfg.embed.device == "cuda"
    assert cfg.eval.ks == [1, 2, 8]
    assert cfg.data.val_fraction == 0.2


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'embed.batchsize'.*embed.batch_size"):
        load_config(None, ["embed.batchsize=3"])


def test_bad_value_names_key():
    with pytest.raises(ConfigError, match=r"data\.val_fraction"):
        load_config(None, ["data.val_fraction=0.9"])
    with pytest.raises(ConfigError, match=r"eval\.ks"):
        load_config(None, ["eval.ks=[0]"])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["embed.batch_size"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_round_trip(tmp_path):
    cfg = load_config(None, ["embed.embedder=timm:test_vit"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert isinstance(cfg, AtlantisConfig)

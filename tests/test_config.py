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


# -- train: {preset: NAME} -------------------------------------------------------------------------


def test_a_train_preset_in_yaml_gives_its_keys_with_the_sections_own_on_top(tmp_path):
    from atlantis.train.config import PRESETS

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  preset: demo\n  epochs: 3\n")
    cfg = load_config(path)
    demo = PRESETS["demo"]
    assert cfg.train.epochs == 3  # the section's own key wins
    for key in ("backbone", "embedding_dim", "head_init", "cache_trunk", "lr", "batch_size"):
        assert getattr(cfg.train, key) == demo[key], key
    saved = tmp_path / "saved.yaml"
    save_config(cfg, saved)  # the resolved keys are saved, not the name: reloads the same
    assert "preset" not in saved.read_text() and load_config(saved) == cfg


def test_a_preset_overrides_earlier_layers_and_later_ones_override_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  preset: demo\n")
    base = {"train": {"lr": 0.5, "epochs": 7, "seed": 4}}  # a run's saved config
    cfg = load_config(path, base=base)
    assert cfg.train.lr == 1e-3 and cfg.train.epochs == 10  # the preset's, over the saved
    assert cfg.train.seed == 4  # what the preset does not set stays
    late = load_config(None, ["train.epochs=2", "train.preset=demo"])
    early = load_config(None, ["train.preset=demo", "train.epochs=2"])
    assert late.train.epochs == 10 and early.train.epochs == 2
    assert early.train.cache_trunk is True


def test_an_unknown_preset_names_the_file_and_the_valid_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  preset: fast\n")
    with pytest.raises(ConfigError, match=r"c.yaml: train.preset: .*'fast'; valid: dino, demo"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"--set train.preset=fast: .*valid: dino, demo"):
        load_config(None, ["train.preset=fast"])


def test_train_config_takes_a_preset_directly():
    from atlantis.train.config import TrainConfig, preset

    assert TrainConfig(preset="demo", epochs=2) == preset("demo", epochs=2)
    assert TrainConfig.model_validate({"preset": "dino"}).backbone.startswith("timm:vit_small")

"""FilterConfig validation, delta folder names, the embedder choice, grid file names."""

from __future__ import annotations

import math

import pytest
import yaml
from pydantic import ValidationError

from atlantis.config import EmbedConfig, load_config
from atlantis.errors import ConfigError
from atlantis.filtering.config import FilterConfig, delta_tag
from atlantis.filtering.grids import grid_filenames
from atlantis.filtering.stage import resolve_embed_config, stage_name


def test_delta_forms() -> None:
    assert FilterConfig().delta == 1.5 and not FilterConfig().is_sweep
    assert FilterConfig(delta="inf").delta == math.inf
    sweep = FilterConfig(delta=yaml.safe_load("[2, 1.0, inf, 1]"))
    assert sweep.deltas == [1.0, 2.0, math.inf] and sweep.is_sweep
    assert FilterConfig(delta=[1.2, 1.2]).delta == 1.2  # one distinct value: not a sweep


@pytest.mark.parametrize("delta", [0, -2, "nan", [], [1.0, 0.0]])
def test_bad_delta(delta: object) -> None:
    with pytest.raises(ValidationError, match="delta"):
        FilterConfig(delta=delta)


def test_unknown_keys_and_ranges() -> None:
    with pytest.raises(ValidationError, match="extra"):
        FilterConfig(dleta=1.0)
    with pytest.raises(ValidationError):
        FilterConfig(dedup_threshold=1.5)
    with pytest.raises(ValidationError):
        FilterConfig(dedup_scope="world")
    assert FilterConfig(dedup_threshold=None).dedup_threshold is None
    assert FilterConfig().dedup_threshold == "auto"
    with pytest.raises(ValidationError):
        FilterConfig(dedup_threshold="high")
    with pytest.raises(ValidationError, match="dedup_threshold"):
        FilterConfig(dedup_threshold=0)


def test_delta_tags() -> None:
    assert [delta_tag(d) for d in (1.0, 1.5, 0.25, math.inf)] == [
        "delta-1", "delta-1.5", "delta-0.25", "delta-inf"]  # fmt: skip
    with pytest.raises(ValidationError, match="clashing folder names"):
        FilterConfig(delta=[1.0, 1.0000001])


def test_embedder_defaults_to_the_run_embedder() -> None:
    embed = EmbedConfig(embedder="efficientnet-lite0", image_size=96, batch_size=8)
    assert resolve_embed_config(FilterConfig(), embed) is embed
    own = resolve_embed_config(
        FilterConfig(embedder="timm:test_vit", embedder_options={"pretrained": False},
                     batch_size=2, device="cpu"), embed)  # fmt: skip
    assert (own.embedder, own.options, own.image_size, own.batch_size) == (
        "timm:test_vit", {"pretrained": False}, None, 2)  # fmt: skip


def test_arm_names() -> None:
    assert stage_name("targeted") == "filter/targeted"
    for bad in ("", "../x", "a/b", "-x"):
        with pytest.raises(Exception, match="arm name"):
            stage_name(bad)


def test_grid_filenames_are_safe_and_distinct() -> None:
    names = grid_filenames(["Black Tern", "black tern", "a/b", "..", "Black_Tern"])
    assert names == {"Black Tern": "Black_Tern.png", "black tern": "black_tern-2.png",
                     "a/b": "a_b.png", "..": "class.png", "Black_Tern": "Black_Tern-3.png"}  # fmt: skip
    assert len({n.lower() for n in names.values()}) == len(names)


def test_rule_names_and_defaults() -> None:
    cfg = FilterConfig()
    assert (cfg.rule, cfg.rules, cfg.radius_prior, cfg.radius_pool_min) == (
        "consistency", ("consistency",), 4.0, 5)  # fmt: skip
    assert (cfg.consistency_metric, cfg.consistency_vote, cfg.consistency_k,
            cfg.consistency_margin) == ("cosine", "centroid", 10, 0.0)  # fmt: skip
    assert FilterConfig(rule="both").rules == ("radius", "consistency")
    assert FilterConfig(rule="consistency+radius").rules == ("consistency", "radius")
    assert FilterConfig(rule="none").rules == ("none",)


@pytest.mark.parametrize(
    ("kwargs", "key", "message"),
    [
        ({"rule": "ordc"}, "rule", "unknown filter rule 'ordc'; valid: consistency, none, "
                                   "radius, both"),
        ({"rule": "radius+knn"}, "rule", "unknown filter rule 'knn'"),
        ({"rule": "radius+radius"}, "rule", "names a rule twice"),
        ({"radius_prior": -1}, "radius_prior", "greater than or equal to 0"),
        ({"radius_prior": "inf"}, "radius_prior", "finite number"),
        ({"radius_pool_min": 0}, "radius_pool_min", "greater than or equal to 1"),
        ({"consistency_metric": "l1"}, "consistency_metric", "'cosine' or 'euclidean'"),
        ({"consistency_vote": "all"}, "consistency_vote", "'centroid' or 'knn'"),
        ({"consistency_k": 0}, "consistency_k", "greater than or equal to 1"),
        ({"consistency_margin": "nan"}, "consistency_margin", "finite number"),
        ({"consistency_vote": "knn", "consistency_margin": 1.5}, "consistency_margin",
         "vote share: use a value in \\[-1, 1\\]"),
    ],
)  # fmt: skip
def test_bad_rule_options_name_the_key(kwargs: dict, key: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as e:
        FilterConfig(**kwargs)
    assert key in str(e.value)


def test_rule_errors_through_the_run_config() -> None:
    """``--set filter.rule=...`` fails in one line naming the key and the valid rules."""
    with pytest.raises(ConfigError) as e:
        load_config(None, ["filter.rule=nearest"])
    assert "'filter.rule'" in str(e.value) and "valid: consistency, none, radius, both" in str(
        e.value
    )
    cfg = load_config(None, ["filter.rule=both", "filter.consistency_k=3"])
    assert cfg.filter.rules == ("radius", "consistency") and cfg.filter.consistency_k == 3

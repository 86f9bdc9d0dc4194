"""FilterConfig validation, delta folder names, the embedder choice, grid file names."""

from __future__ import annotations

import math

import pytest
import yaml
from pydantic import ValidationError

from atlantis.config import EmbedConfig
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

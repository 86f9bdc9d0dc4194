"""``normalize``: ``"auto"`` L2-normalises unless the real vectors are unit length already;
True/False force it; the choice made is recorded (results, records, stats, manifest)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from atlantis.config import load_config
from atlantis.errors import ConfigError
from atlantis.filtering.arrays import UNIT_TOL, is_unit_length, l2_normalize, resolve_normalize
from atlantis.filtering.config import FilterConfig
from atlantis.filtering.consistency import consistency
from atlantis.filtering.ordc import ordc


def _cloud(seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Three classes of raw 8-d vectors whose lengths vary (0.5x to 4x), like a backbone's."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 3
    real = np.concatenate([c + rng.normal(size=(10, 8)) for c in centres])
    real *= rng.uniform(0.5, 4.0, size=(len(real), 1))
    syn = np.concatenate([c + 0.8 * rng.normal(size=(12, 8)) for c in centres])
    syn *= rng.uniform(0.5, 4.0, size=(len(syn), 1))
    return real, [c for c in "abc" for _ in range(10)], syn, [c for c in "abc" for _ in range(12)]


def test_unit_length_check() -> None:
    x = l2_normalize(np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32))
    assert is_unit_length(x) and is_unit_length(x[:0])
    assert is_unit_length(x * (1 + UNIT_TOL / 2)) and not is_unit_length(x * (1 + 2 * UNIT_TOL))
    x[7] *= 1.5  # one raw row is enough to call the set raw
    assert not is_unit_length(x)
    assert resolve_normalize("auto", x) and not resolve_normalize(False, x)
    assert resolve_normalize(True, l2_normalize(x)) and not resolve_normalize(
        "auto", l2_normalize(x)
    )


def test_auto_leaves_unit_vectors_as_they_are() -> None:
    real, y_real, syn, y_syn = _cloud()
    real, syn = l2_normalize(real), l2_normalize(syn)
    auto, raw = (ordc(real, y_real, syn, y_syn, 1.0, normalize=n) for n in ("auto", False))
    assert not auto.normalized and not raw.normalized
    assert (auto.keep == raw.keep).all() and np.array_equal(auto.radius, raw.radius)
    assert 0 < auto.keep.sum() < len(syn)  # the case decides something
    c_auto, c_raw = (consistency(real, y_real, syn, y_syn, metric="euclidean", normalize=n)
                     for n in ("auto", False))  # fmt: skip
    assert not c_auto.normalized and np.array_equal(c_auto.margin, c_raw.margin)


def test_auto_normalises_raw_vectors() -> None:
    real, y_real, syn, y_syn = _cloud()
    auto, forced, raw = (ordc(real, y_real, syn, y_syn, 1.0, normalize=n)
                         for n in ("auto", True, False))  # fmt: skip
    assert auto.normalized and forced.normalized and not raw.normalized
    assert (auto.keep == forced.keep).all() and np.array_equal(auto.radius, forced.radius)
    assert not (auto.keep == raw.keep).all()  # the vectors' lengths changed decisions
    c_auto, c_forced = (consistency(real, y_real, syn, y_syn, metric="euclidean", normalize=n)
                        for n in ("auto", True))  # fmt: skip
    assert c_auto.normalized and (c_auto.keep == c_forced.keep).all()


def test_auto_radius_by_hand() -> None:
    """Class x: (1, 0) and (0, 3); a synthetic image at (0, 10), on the second's ray.

    Raw: centroid (0.5, 1.5), radius sqrt(0.25 + 2.25) = 1.581; the image is 8.51 away:
    removed at delta 1.5. Unit: centroid (0.5, 0.5), radius sqrt(0.5) = 0.707; the image
    becomes (0, 1), 0.707 away: kept.
    """
    real, syn = np.array([[1.0, 0.0], [0.0, 3.0]]), np.array([[0.0, 10.0]])
    raw = ordc(real, ["x", "x"], syn, ["x"], 1.5, normalize=False)
    auto = ordc(real, ["x", "x"], syn, ["x"], 1.5, normalize="auto")
    assert raw.radius[0] == pytest.approx(np.sqrt(2.5)) and not raw.keep[0]
    assert raw.distance[0] == pytest.approx(np.sqrt(0.25 + 8.5**2))
    assert auto.radius[0] == pytest.approx(np.sqrt(0.5)) and auto.keep[0] and auto.normalized
    assert auto.distance[0] == pytest.approx(np.sqrt(0.5))


def test_config_values() -> None:
    assert FilterConfig().normalize == "auto"
    for value, expected in ((True, True), (False, False), ("auto", "auto"), ("TRUE", True),
                            ("false", False), (yaml.safe_load("auto"), "auto"),
                            (yaml.safe_load("true"), True)):  # fmt: skip
        assert FilterConfig(normalize=value).normalize == expected
    assert load_config(None, ["filter.normalize=false"]).filter.normalize is False
    assert load_config(None, ["filter.normalize=auto"]).filter.normalize == "auto"


@pytest.mark.parametrize("bad", ["maybe", "yes", 1, 0, None, 0.5, ["auto"]])
def test_bad_config_values_name_the_choices(bad: object) -> None:
    with pytest.raises(ValidationError, match="normalize must be true, false or auto"):
        FilterConfig(normalize=bad)


def test_bad_override_is_a_config_error() -> None:
    with pytest.raises(
        (ConfigError, ValidationError), match="normalize must be true, false or auto"
    ):
        load_config(None, ["filter.normalize=maybe"])


def test_bad_function_values() -> None:
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        ordc([[1.0, 0.0]], ["x"], [[1.0, 0.0]], ["x"], 1.0, normalize="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        consistency([[1.0, 0.0]], ["x"], [[1.0, 0.0]], ["x"], normalize=None)  # type: ignore[arg-type]

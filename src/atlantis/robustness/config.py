"""The ``attack`` section of a run's config: the PGD grid and how to run it.

Like ``FilterConfig`` it does not subclass ``atlantis.config.Section``: ``atlantis.config``
imports the stage sections to build ``AtlantisConfig``, so importing it back would be
circular. The model config is the same (unknown keys fail, assignments are validated).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Keys that change speed, not results: excluded from the stage's config hash.
RUNTIME_KEYS = {"batch_size", "device"}


class AttackConfig(BaseModel):
    """Embedding-space PGD against each trained arm (the paper's Table 5 grid by default).

    ``steps`` x ``eps`` is the grid of attacks: every pair is one cell. ``eps`` bounds the
    perturbation in the L-inf norm as a fraction of the pixel range [0, 1] (0.05 is about
    13 of 255 grey levels). ``step_size``: the size of each sign-gradient step, also a
    fraction of the pixel range; ``None`` uses Madry et al.'s ``2.5 * eps / steps``, which
    lets the attack reach the ball's boundary from anywhere in it.

    ``max_queries``: attack a seeded random subset of the test images (the gallery is still
    the whole clean test split), so CPU runs take minutes; ``None`` attacks every test
    image. ``seed`` draws that subset and every query's random start.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    steps: list[int] = Field(default_factory=lambda: [1, 10])
    eps: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.5])
    step_size: float | None = Field(None, gt=0, le=1)
    max_queries: int | None = Field(None, ge=1)
    seed: int = 0
    # runtime (not hashed)
    batch_size: int = Field(32, gt=0)
    device: str = "auto"

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, v: list[int]) -> list[int]:
        if not v or any(s < 1 for s in v):
            raise ValueError(f"steps must be a non-empty list of integers >= 1, e.g. [1, 10]; "
                             f"got {v}")  # fmt: skip
        return sorted(set(v))

    @field_validator("eps")
    @classmethod
    def _check_eps(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < e <= 1 for e in v):
            raise ValueError(
                f"eps must be a non-empty list of fractions of the pixel range in (0, 1], "
                f"e.g. [0.05, 0.1, 0.5]; got {v}"
            )
        return sorted(set(v))


def eps_tag(eps: float) -> str:
    """File-safe name of a noise bound: ``0.05`` -> ``e0.05`` (``repr``: no two values clash)."""
    return f"e{float(eps)!r}"

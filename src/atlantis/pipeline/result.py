"""What a loop produced (``LoopResult``) and how its training variants are named.

The loop makes these and the report collector reads them; they live apart from both so
that neither has to import the other (``loop`` calls ``collect`` to write the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoopResult:
    """Where the loop's results are, and how long each step took (seconds)."""

    run: Path
    # arm (or arm/delta-<d> of a sweep) -> its train stages, one per seed
    trainings: dict[str, list[str]] = field(default_factory=dict)
    # budget curve: arm -> budget -> its train stages, one per seed (``loop.budgets``)
    curves: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    report_html: Path | None = None
    report_json: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def split_variant(variant: str) -> tuple[str, float | None]:
    """``targeted/delta-1.5`` -> ``("targeted", 1.5)``; a plain arm -> ``(arm, None)``."""
    arm, sep, tag = variant.partition("/delta-")
    return (arm, float(tag)) if sep else (arm, None)

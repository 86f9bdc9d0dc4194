"""Statistical detectors of the Data Insight Generator, run as one fault-tolerant batch.

``run_detectors`` is what the DIG calls: every registered detector (or the ``names`` asked
for) runs when its inputs exist, is skipped with the reason when they do not, and is caught
when it fails, so one broken detector (bad option, degenerate data) costs its own finding
only, never the whole insight. Results come back in the order asked for.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

from atlantis.insight.detectors import (  # noqa: F401 - importing registers the detectors
    class_imbalance,
    domain_scarcity,
    near_duplicates,
    outliers,
)
from atlantis.insight.detectors.base import (
    DETECTORS,
    Detector,
    DetectorInputs,
    DetectorResult,
    ItemIssue,
    jsonable,
)

__all__ = [
    "DEFAULT_ORDER",
    "DETECTORS",
    "Detector",
    "DetectorInputs",
    "DetectorResult",
    "ItemIssue",
    "jsonable",
    "run_detectors",
]

# Cheap count-based findings first: they are what the planner needs most.
DEFAULT_ORDER = ("class_imbalance", "domain_scarcity", "near_duplicates", "outliers")


def run_detectors(
    inputs: DetectorInputs,
    names: Sequence[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[DetectorResult]:
    """Run detectors on ``inputs``; ``options`` maps a detector name to its keyword options.

    Unknown names in ``names`` or ``options`` raise at once (a typo in a config should not
    read as "nothing found"); everything that goes wrong inside a detector, including its
    construction from ``options``, becomes a ``status="failed"`` result with the error text.
    """
    wanted = list(names) if names is not None else _all_names()
    for name in wanted:
        DETECTORS.get(name)  # raises UnknownNameError listing the valid names
    options = {k.lower(): v for k, v in (options or {}).items()}
    stray = sorted(set(options) - {n.lower() for n in wanted})
    if stray:
        raise ValueError(f"options given for detectors that will not run: {', '.join(stray)}")
    return [_run_one(name.lower(), inputs, options.get(name.lower(), {})) for name in wanted]


def _all_names() -> list[str]:
    rest = [n for n in DETECTORS.names() if n not in DEFAULT_ORDER]
    return [n for n in DEFAULT_ORDER if n in DETECTORS] + rest


def _run_one(name: str, inputs: DetectorInputs, kwargs: dict[str, Any]) -> DetectorResult:
    factory = DETECTORS.get(name)
    requires: frozenset[str] = getattr(factory, "requires", frozenset())
    reasons = [r for r in (inputs.missing(req) for req in sorted(requires)) if r]
    if reasons:
        reason = "; ".join(reasons)
        return DetectorResult(name, "skipped", summary={"reason": reason}, info={"reason": reason})
    try:
        return DETECTORS.create(name, **kwargs)(inputs)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exception(exc)
        return DetectorResult(name, "failed", error=error, info={"traceback": "".join(tb[-3:])})

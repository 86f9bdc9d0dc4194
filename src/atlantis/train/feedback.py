"""Training feedback (ATLANTIS Algorithm 2): which training classes the best model retrieves worst.

``Θ_tf : (X_train, M*, Eval) -> T_feedback`` (supplement F). With ``M*`` the best model
(selected on validation R@1; across several trained arms, e.g. one per filter Δ, the arm
with the best validation R@1, see ``select_best_arm``), evaluate per-class R@1 on the
training classes, then k times: the class with the lowest R@1 joins ``C_poor`` if its R@1 is
below ``tau``. ``C_poor`` goes back to the planner (APS), which asks for more images of those
classes; it reads ``RUN/train/<arm>/feedback.json``::

    {"c_poor": [...], "per_class_r1": {...}, "k": 5, "tau": 0.5, ...}

Per-class R@1 is measured on the *real* training images: synthetic images of a class would
grade the class on the generator's pictures rather than on the data it must retrieve.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from atlantis.errors import StageError
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run

FEEDBACK_FILE = "feedback.json"


def poor_classes(per_class_r1: Mapping[str, float], k: int, tau: float) -> list[str]:
    """Algorithm 2's loop: up to ``k`` classes of lowest R@1, each kept only if below ``tau``.

    Ties are broken by class name, so the result does not depend on dictionary order.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    remaining = dict(per_class_r1)
    c_poor: list[str] = []
    for _ in range(min(k, len(remaining))):
        worst = min(remaining, key=lambda c: (remaining[c], str(c)))
        if remaining.pop(worst) < tau:
            c_poor.append(worst)
    return c_poor


def feedback_report(per_class_r1: Mapping[str, float], k: int, tau: float,
                    **info: Any) -> dict[str, Any]:  # fmt: skip
    """The ``feedback.json`` payload: C_poor, every class's R@1, the parameters, and ``info``."""
    return {
        "c_poor": poor_classes(per_class_r1, k, tau),
        "per_class_r1": {str(c): float(v) for c, v in sorted(per_class_r1.items())},
        "k": k,
        "tau": tau,
        **info,
    }


def write_feedback(path: Any, report: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")


def load_feedback(run: Run, arm: str = "baseline") -> dict[str, Any]:
    """The feedback of a finished ``train/<arm>`` stage (what the planner reads)."""
    run.require(f"train/{arm}")
    path = run.stage_dir(f"train/{arm}") / FEEDBACK_FILE
    if not path.exists():
        raise StageError(f"{path} is missing; re-run: atlantis train {run.root} --arm {arm}")
    return json.loads(path.read_text(encoding="utf-8"))


def select_best_arm(run: Run, arms: Sequence[str]) -> str:
    """Among trained arms (e.g. one per filter Δ), the one with the best validation R@1."""
    scores = {}
    for arm in arms:
        run.require(f"train/{arm}")
        metrics = json.loads((run.stage_dir(f"train/{arm}") / "metrics.json").read_text())
        scores[arm] = metrics.get("best_val_R@1")
    scored = {a: s for a, s in scores.items() if s is not None}
    if not scored:
        raise StageError(f"none of the arms {list(arms)} has a validation R@1 to compare")
    return max(scored, key=lambda a: scored[a])  # ties: the first arm listed

"""Shared pieces of the plan tests: a hand-made insight and a tiny ingested run holding it.

The insight is written by hand (a valid ``Insight``), so the planner is tested against known
numbers: four training classes (the Arctic Tern under-represented: 10 images against a
median of 35), three activity domains, three scarce cells (no swimming Laysan Albatross; the
tern neither sits nor swims) and two new classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from atlantis.config import DataConfig
from atlantis.data.ingest import ingest
from atlantis.insight.assign import scarce_cells
from atlantis.insight.schema import Domain, Insight
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run

TRAIN = ["Laysan Albatross", "Herring Gull", "Arctic Tern", "Mallard"]
TEST = ["Wandering Albatross", "Black Tern", "Mute Swan", "Common Loon"]
COUNTS = {"Laysan Albatross": 40, "Herring Gull": 40, "Arctic Tern": 10, "Mallard": 30}
CELLS = {
    "Laysan Albatross": {"flying": 30, "sitting": 10, "swimming": 0},
    "Herring Gull": {"flying": 14, "sitting": 13, "swimming": 13},
    "Arctic Tern": {"flying": 10, "sitting": 0, "swimming": 0},
    "Mallard": {"flying": 5, "sitting": 10, "swimming": 15},
}
NEW = ["Snowy Owl", "Atlantic Puffin"]


def make_insight(**overrides: Any) -> Insight:
    fields: dict[str, Any] = {
        "data_overview": "120 photos of seabirds and ducks.",
        "class_imbalance_recommendations": "Add Arctic Tern images.",
        "domain_imbalance_recommendations": {"Laysan Albatross": "Show it swimming."},
        "class_names": TRAIN,
        "class_counts": COUNTS,
        "imbalance_ratio": 4.0,
        "under_represented_classes": ["Arctic Tern"],
        "domain_criterion": "activity",
        "domains": [
            Domain(name=d, description=f"birds {d}", keywords=[d[:3]])
            for d in ("flying", "sitting", "swimming")
        ],
        "class_domain_counts": CELLS,
        "scarce_cells": scarce_cells(CELLS, 0.5),
        "new_classes": NEW,
        "top_tokens": [],
        "top_tokens_per_class": {
            c: [{"token": t, "pos": "noun", "count": 3} for t in ("wing", "beak", "photo")]
            for c in TRAIN
        },
        "metadata": {"llm": {"backend": "rules", "identity": "rules"}},
    }
    return Insight.model_validate({**fields, **overrides})


def make_dataset(root: Path, per_class: int = 3) -> Path:
    rows = []
    for c, label in enumerate(TRAIN + TEST):
        for i in range(per_class):
            path = root / "images" / f"{c}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (c * 30, i * 60, 90)).save(path)
            rows.append({"id": f"c{c}i{i}", "path": f"images/{c}_{i}.png", "label": label})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def write_stage(run: Run, name: str, files: dict[str, Any], config: Any = None) -> None:
    """A finished stage ``name`` holding ``files`` (dicts written as JSON): stands in for
    stages other engineers write (insight by hand, filter, train)."""
    with run.stage(name, config or {"hand_written": True}, force=True) as ctx:
        for fname, content in files.items():
            text = content if isinstance(content, str) else json.dumps(content, indent=1)
            atomic_write_text(ctx.dir / fname, text)
            ctx.add_output(ctx.dir / fname)


def write_insight(run: Run, insight: Insight) -> None:
    assignments = "".join(
        json.dumps({"id": f"c{c}i{i}", "domains": [d], "by": "keyword"}) + "\n"
        for c in range(len(TRAIN)) for i, d in enumerate(("flying", "sitting", "swimming"))
    )  # fmt: skip
    write_stage(run, "insight", {"insight.json": insight.model_dump_json(indent=1),
                                 "assignments.jsonl": assignments})  # fmt: skip


@pytest.fixture
def bare_run(tmp_path: Path) -> Run:
    """Ingested (zsl: the first four classes train), no insight."""
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="manifest", root=str(make_dataset(tmp_path / "birds")),
                           val_fraction=0.0, verify_images=False))  # fmt: skip
    return run


@pytest.fixture
def run(bare_run: Run) -> Run:
    """Ingested, with the hand-made insight as a finished insight stage."""
    write_insight(bare_run, make_insight())
    return bare_run

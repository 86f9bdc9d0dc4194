"""A fully populated run report (three arms, three seeds, review images) and a minimal one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from atlantis.report.schema import (
    AdversarialRow,
    AdversarialTable,
    ArmResult,
    CostTable,
    CostTerm,
    Distribution,
    FilterSummary,
    GridImages,
    InsightSummary,
    ReportData,
    SeedResult,
    SyntheticImages,
)

EVIL = "<script>alert(1)</script>"
QUOTE = 'quote"&amp'
CLASSES = ["animal-mammal", "food-fruit", "transport-air", EVIL, QUOTE]
REAL = {
    "animal-mammal": {"google": 30, "twitter": 28},
    "food-fruit": {"google": 20, "twitter": 3},
    "transport-air": {"google": 12, "twitter": 11},
    EVIL: {"google": 2, "twitter": 4},
    QUOTE: {"google": 0, "twitter": 9},
}
# Kept synthetic images of the targeted arm: aimed at the scarce cells.
ADDED = {"food-fruit": {"twitter": 15}, EVIL: {"google": 10, "twitter": 8}, QUOTE: {"google": 7}}
# R@1 / R@2 / MAP@R per arm and seed: targeted is best on R@1.
RESULTS = {
    "baseline": [(0.640, 0.760, 0.300), (0.644, 0.758, 0.302), (0.638, 0.761, 0.298)],
    "naive": [(0.650, 0.770, 0.310), (0.652, 0.772, 0.309), (0.649, 0.769, 0.311)],
    "targeted": [(0.684, 0.790, 0.330), (0.680, 0.792, 0.328), (0.686, 0.788, 0.333)],
}
PER_CLASS = {
    "baseline": {c: 0.6 for c in CLASSES},
    "naive": {c: 0.6 + 0.01 * i for i, c in enumerate(CLASSES)},
    "targeted": {
        "animal-mammal": 0.55,
        "food-fruit": 0.7,
        "transport-air": 0.6,
        EVIL: 0.9,
        QUOTE: 0.75,
    },
}


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 20)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _distribution(added: dict[str, dict[str, int]]) -> Distribution:
    table = {
        c: {d: n + added.get(c, {}).get(d, 0) for d, n in row.items()} for c, row in REAL.items()
    }
    return Distribution(
        class_counts={c: sum(row.values()) for c, row in table.items()},
        class_domain_counts=table,
        synthetic_counts={c: sum(row.values()) for c, row in added.items()},
    )


def _arm(name: str, description: str, synthetic: SyntheticImages) -> ArmResult:
    seeds = [
        SeedResult(
            seed=s, recall={"R@1": r1, "R@2": r2}, map_at_r=m, best_epoch=3 + s, val_r1=r1 - 0.01
        )
        for s, (r1, r2, m) in enumerate(RESULTS[name])
    ]
    return ArmResult(
        name=name,
        description=description,
        synthetic_images=synthetic,
        seeds=seeds,
        per_class_r1=PER_CLASS[name],
    )


def build_full_report(run: Path) -> ReportData:
    """Every section filled; grids in ``run`` (one of them missing on disk)."""
    grids = {
        EVIL: GridImages(
            grid=Path(_png(run / "filter/targeted/grids/evil.png", (200, 30, 30)))
            .relative_to(run)
            .as_posix()
        ),
        "food-fruit": GridImages(
            kept=[_png(run / "k1.png", (30, 200, 30))],
            removed=[_png(run / "r1.jpg", (30, 30, 200), (400, 300)), str(run / "gone.png")],
        ),
        QUOTE: GridImages(grid="filter/targeted/grids/missing.png"),
        "transport-air": GridImages(grid=_png(run / "t.png", (90, 90, 90))),
    }
    kept_fraction = {EVIL: 0.25, "food-fruit": 0.5, QUOTE: 0.1, "transport-air": 0.9}
    return ReportData(
        title="Emoji: ATLANTIS vs naive",
        created="2025-01-01T12:00:00+00:00",
        run=str(run),
        config_summary={"dataset": "emoji", "budget": 40, "delta": 1.5, "seeds": [0, 1, 2]},
        notes=["insight produced by the rules engine, not a language model", "3 seeds only"],
        insight=InsightSummary(
            data_overview="Emoji drawn by two vendors. <img src=x onerror=alert(2)>",
            under_represented=[EVIL],
            scarce_cells=[("food-fruit", "twitter"), (QUOTE, "google")],
            new_classes=["animal-reptile"],
            backend="rules (no LLM)",
            is_language_model=False,
        ),
        distributions={
            "real": _distribution({}),
            "baseline": _distribution({}),
            "naive": _distribution(
                {"animal-mammal": {"google": 20}, "transport-air": {"twitter": 20}}
            ),
            "targeted": _distribution(ADDED),
        },
        arms=[
            _arm("baseline", "real images only", SyntheticImages()),
            _arm(
                "naive",
                "untargeted plan, no ORDC",
                SyntheticImages(planned=40, generated=40, kept=40),
            ),
            _arm("targeted", "ATLANTIS", SyntheticImages(planned=40, generated=39, kept=40)),
        ],
        splits_evaluated=["test (real)", "test (synthetic X_s)"],
        synthetic_test={
            "baseline": {"R@1": 0.41, "R@2": 0.52},
            "targeted": {"R@1": 0.57, "R@2": 0.66},
        },
        filter={
            "targeted": FilterSummary(
                synthetic=52,
                kept=40,
                removed=12,
                removed_by_reason={"outlier": 9, "near_duplicate": 3},
                kept_fraction=kept_fraction,
                grids=grids,
            )
        },
        adversarial=AdversarialTable(
            queries=100,
            gallery=400,
            clean_r1={"baseline": 0.64, "targeted": 0.684},
            rows=[
                AdversarialRow(
                    steps=1, eps=0.05, step_size=0.05, r1={"baseline": 0.31, "targeted": 0.377}
                ),
                AdversarialRow(
                    steps=10, eps=0.1, step_size=0.01, r1={"baseline": 0.12, "targeted": 0.109}
                ),
            ],
        ),
        cost=CostTable(
            terms=[
                CostTerm(
                    name="k_s (generate)",
                    coefficient_s=30,
                    count=2000,
                    seconds=60000,
                    share=0.8314,
                    source="paper, A100 SDXL fp32",
                ),
                CostTerm(
                    name="gamma (setup)",
                    coefficient_s=60,
                    count=1,
                    seconds=60,
                    share=0.0008,
                    source="measured here",
                ),
            ],
            total_seconds=72165,
            notes=["coefficients from supplement J unless measured"],
        ),
        timings={"ingest": 1.5, "train/targeted": 3725.0, "evaluate": 12.25},
    )


@pytest.fixture
def full_report(tmp_path: Path) -> ReportData:
    return build_full_report(tmp_path / "run")


@pytest.fixture
def minimal_report() -> ReportData:
    return ReportData(
        arms=[ArmResult(name="baseline", seeds=[SeedResult(seed=0, recall={"R@1": 0.5})])]
    )

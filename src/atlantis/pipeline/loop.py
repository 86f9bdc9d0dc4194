"""``atlantis run``: the whole ATLANTIS loop on one run folder, every stage resumable.

ingest -> caption -> embed -> insight -> for each augmented arm: plan -> source images -> filter
(ORDC, diversity) -> filtering feedback (Algorithm 1, capped) -> train every arm over
``loop.seeds`` seeds -> optional training-feedback rounds (Algorithm 2) -> synthetic test
set (X_s) -> the untrained backbone's R@K (the reference training must beat) -> adversarial
robustness -> the report (``report.html`` + ``report.json``). With ``loop.filter_space:
baseline`` the baseline arm trains before the others are filtered: ORDC then measures in
its space, as the paper does. The ``oracle`` arm (with a ``data.scenario``) trains on the
real images plus those the scenario withheld; like the baseline it is never sourced.

Nothing here computes anything itself: each step is a stage function that skips its work
when its manifest says it is up to date, so running the loop again after a kill (or after
changing one setting) redoes only what is missing or stale. Feedback rounds are counted in
the plan's own summary, so a resumed loop never adds a round twice.

**Equal optimisation.** With several arms every training takes the same number of optimiser
steps (``comparison_steps``: ``train.steps``, or the baseline's own count), under the same
LR schedule, seeds and validation periods: an arm with more images sees more *different*
images, never more updates. Each train stage's ``metrics.json`` records
``optimizer_steps`` and ``images_seen``.

**Budget curves** (``loop.budgets``): after the arms train, the naive and the targeted arm
train again at each budget on a nested subset of what they sourced (``train/<arm>/budget-<b>``,
``atlantis.train.subsets``), with the same step count; a budget whose subset is the arm's
whole kept set reuses the arm's own trainings. ``loop.match_kept`` cuts the naive arm, at
every budget, to the number of images the targeted arm kept there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atlantis.config import AtlantisConfig
from atlantis.errors import AtlantisError, ConfigError, StageError
from atlantis.filtering.config import FilterConfig
from atlantis.pipeline.config import ORACLE_NEEDS_SCENARIO, REAL_ARMS, LoopConfig, augmented_arms
from atlantis.pipeline.result import LoopResult, split_variant
from atlantis.registry import UnknownNameError
from atlantis.store.run import Run
from atlantis.train.config import TrainConfig
from atlantis.train.subsets import Subset

BASELINE, NAIVE, TARGETED, ORACLE = "baseline", "naive", "targeted", "oracle"
#: What ``naive_filter: false`` means: keep everything (no ORDC, no diversity control).
NO_FILTER = FilterConfig(rule="none", delta=float("inf"), dedup_threshold=None, grid_per_class=0)

Say = Callable[[str], None]


def arm_trainings(loop: LoopConfig, train_cfg: TrainConfig) -> list[tuple[int, str | None]]:
    """``(seed, stage tag)`` of each training of an arm: the config's seed, then the next."""
    from atlantis.train.stage import seed_tag

    seeds = [train_cfg.seed + i for i in range(loop.seeds)]
    return [(s, seed_tag(train_cfg, s)) for s in seeds]


def filter_config(cfg: AtlantisConfig, arm: str, run: Run | None = None) -> FilterConfig:
    """The arm's filter: the configured one, or none at all for the naive (NA) baseline.

    With ``loop.filter_space: baseline`` (and no ``filter.embedder``) ORDC measures in the
    space of the baseline arm's trained model, as the paper does: its classes are far
    better separated than the untrained backbone's, so outliers stand out.
    """
    if arm == NAIVE and not cfg.loop.naive_filter:
        return NO_FILTER
    if cfg.loop.filter_space == "baseline" and cfg.filter.embedder is None and run is not None:
        spec = f"checkpoint:{run.stage_dir(f'train/{BASELINE}')}"
        return cfg.filter.model_copy(update={"embedder": spec})
    return cfg.filter


def comparison_steps(run: Run, cfg: AtlantisConfig) -> int | None:
    """The optimiser steps every arm of the comparison trains for (None: epoch mode).

    ``train.steps`` when set; else, with several arms, what the baseline takes in epoch
    mode: ``epochs`` passes of ``pool // batch_size`` steps over the real training images
    (as ``EpochBatchSampler`` counts them, for one process and ``train.seed``), so the
    baseline trains exactly as it would alone and the other arms take as many steps. A run
    with one arm keeps the epoch mode. Reads the ingest stage (run after it).
    """
    if cfg.train.steps is not None or len(cfg.loop.arms) < 2:
        return cfg.train.steps
    import numpy as np

    from atlantis.data.ingest import load_ingested
    from atlantis.train.data import EpochBatchSampler

    records, _ = load_ingested(run)
    names = [r.label for r in records if r.split == "train"]
    index = {name: i for i, name in enumerate(sorted(set(names)))}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    passes = EpochBatchSampler(labels, m=cfg.train.m_per_class, batch_size=cfg.train.batch_size,
                               seed=cfg.train.seed, synthetic_ratio=cfg.train.synthetic_ratio)  # fmt: skip
    return sum(passes.n_batches(e) for e in range(1, cfg.train.epochs + 1))


def run_loop(run: Run, cfg: AtlantisConfig, *, progress: bool = True,
             say: Say = print) -> LoopResult:  # fmt: skip
    """Run (or resume) the whole loop into ``run``; returns where the results are."""
    from atlantis.caption.stage import caption
    from atlantis.data.ingest import ingest
    from atlantis.embed.stage import embed
    from atlantis.insight.stage import insight

    problems = setting_problems(cfg)
    if problems:  # before any stage runs: they would fail only after the other arms
        raise ConfigError("; ".join(problems))
    result = LoopResult(run.root)
    timed = _timer(result.timings)
    with timed("ingest"):
        ingest(run, cfg.data)
    check_truth_classes(run, cfg, say)  # a truth file named another way fails now
    with timed("caption"):
        caption(run, cfg.caption, progress=progress)
    with timed("embed"):  # before insight, whose outlier / near-duplicate detectors read it
        embed(run, cfg.embed, progress=progress)
    with timed("insight"):
        insight(run, cfg.insight, progress=progress)
    augmented = augmented_arms(cfg.loop.arms)  # baseline and oracle: real images, no sourcing
    if cfg.loop.filter_space == "baseline" and augmented and cfg.filter.embedder is None:
        with timed(f"train/{BASELINE}"):  # ORDC measures in this model's space
            result.trainings.update(train_arm(run, cfg, BASELINE, progress=progress, say=say))
    for arm in augmented:
        with timed(f"source/{arm}"):
            source_arm(run, cfg, arm, progress=progress, say=say)
        check_truth_covers(run, cfg, arm)  # a truth gap fails now, not at the report
    for arm in cfg.loop.arms:
        if arm in result.trainings:
            continue
        with timed(f"train/{arm}"):
            result.trainings.update(train_arm(run, cfg, arm, progress=progress, say=say))
    # Algorithm 2, counted in the plan (a resumed loop retrains above, then goes on here)
    while (TARGETED in augmented
           and _rounds_done(run, TARGETED, "train") < cfg.loop.train_feedback_rounds):  # fmt: skip
        with timed("train-feedback"):
            if not training_feedback_round(run, cfg, TARGETED, progress=progress, say=say):
                break
            result.trainings.update(train_arm(run, cfg, TARGETED, progress=progress, say=say))
    if cfg.loop.match_kept and NAIVE in result.trainings:  # feedback changed targeted's count
        result.trainings.update(train_arm(run, cfg, NAIVE, progress=progress, say=say))
    for budget in cfg.loop.budgets:  # after the feedback: the curve subsets the final sets
        for arm in curve_arms(cfg):
            with timed(f"train/{arm}/budgets"):
                names = train_arm(run, cfg, arm, budget=budget, progress=progress, say=say)
            result.curves.setdefault(arm, {})[budget] = names[arm]
    if cfg.loop.synthetic_test_per_class:
        with timed("testset"):
            try:
                synthetic_test(run, cfg, result.trainings, progress=progress, say=say)
            except StageError as exc:  # X_s is a side measurement: the comparison stands
                say(f"X_s not measured: {exc}")
    if cfg.loop.untrained_reference:
        from atlantis.evaluation.stage import evaluate

        with timed("evaluate/untrained"):
            evaluate(run, cfg.embed, cfg.eval.model_copy(update={"split": "test"}),
                     progress=progress)  # fmt: skip
    if cfg.loop.attack:
        attacked = attack_targets(result.trainings)
        if attacked:
            from atlantis.robustness.stage import attack

            with timed("attack"):
                say(f"attack: PGD against {', '.join(attacked)}")
                attack(run, cfg.attack, attacked, progress=progress)
    if cfg.loop.report:
        from atlantis.pipeline.collect import write_report

        with timed("report"):
            result.report_html, result.report_json = write_report(run, cfg, result)
    return result


def check_config(cfg: AtlantisConfig) -> list[str]:
    """Everything ``run_loop`` would trip over that can be known before it starts.

    ``atlantis run CONFIG --check``: the keys were validated when ``cfg`` was loaded; this
    checks what only the files and the backends can say: the dataset root exists and holds
    its format's layout (read without decoding any image), each backend the loop would use
    exists and takes its options (backends are built, not loaded: no model is read, nothing
    is downloaded), the retrieval pool and the weights files exist. Nothing is written.
    Returns the problems, one line each, naming the key (empty: the loop can start).
    """
    from atlantis.llm import create_llm

    problems: list[str] = []

    def check(key: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except (AtlantisError, UnknownNameError, ValueError, OSError) as exc:
            text = str(exc)
            problems.append(text if text.startswith(key) else f"{key}: {text}")
            return None

    dataset = check("data.root", lambda: _check_data(cfg))
    check("caption.captioner", lambda: _build("caption", cfg))
    check("embed.embedder", lambda: _build("embed", cfg))
    check("insight.llm", lambda: create_llm(cfg.insight.llm, **cfg.insight.llm_options))
    problems += setting_problems(cfg)
    augmented = augmented_arms(cfg.loop.arms)
    if augmented:
        check("plan.llm", lambda: create_llm(cfg.plan.llm, **cfg.plan.llm_options))
        check("generate.source", lambda: _build("generate", cfg))
        if cfg.filter.embedder is not None:  # else embed.embedder's, or train/baseline's model
            check("filter.embedder", lambda: _build("filter", cfg))
    classes = len({r.label for r in dataset.records}) if dataset is not None else 2
    check("train.backbone", lambda: _check_backbone(cfg.train))
    check("train.loss", lambda: _check_loss(cfg.train, classes))
    return problems


def setting_problems(cfg: AtlantisConfig) -> list[str]:
    """What no loop with ``cfg`` could finish, known from the config and small files alone:
    refused before anything is written (``run``) or listed (``run --check``)."""
    return [p for p in (oracle_problem(cfg), budgets_problem(cfg), truth_problem(cfg)) if p]


def oracle_problem(cfg: AtlantisConfig) -> str | None:
    """Why ``loop.arms`` cannot hold ``oracle`` here (None: it can, or it is not listed).

    The oracle restores what the scenario withheld; under ``data.scenario.kind: none`` that
    is nothing, and the arm would silently be a second baseline.
    """
    if ORACLE in cfg.loop.arms and cfg.data.scenario.kind == "none":
        return f"loop.arms: {ORACLE_NEEDS_SCENARIO}"
    return None


def curve_arms(cfg: AtlantisConfig) -> list[str]:
    """The arms a budget curve trains at each ``loop.budgets`` budget, in ``loop.arms``' order."""
    return [a for a in cfg.loop.arms if a in (NAIVE, TARGETED)]


def budgets_problem(cfg: AtlantisConfig, planned: int | None = None) -> str | None:
    """Why ``loop.budgets`` cannot be trained (None: it can, or no budgets are set).

    The curve subsets what each arm sourced at its full budget, so no budget can exceed
    it: ``plan.budget``, or (``planned``) the planned size of a plan sized otherwise.
    Increasing order is the field's own check.
    """
    budgets = cfg.loop.budgets
    if not budgets:
        return None
    if not curve_arms(cfg):
        return (f"loop.budgets: {budgets} needs the naive or the targeted arm in loop.arms "
                f"(it has {cfg.loop.arms}); the curve trains those at each budget")  # fmt: skip
    if cfg.filter.is_sweep:
        return (f"loop.budgets: a budget curve needs one filter delta, but filter.delta is "
                f"the sweep {list(cfg.filter.deltas)}; pick the delta to curve")  # fmt: skip
    top = cfg.plan.budget if planned is None else planned
    if top is not None and budgets[-1] > top:
        return (f"loop.budgets: {budgets[-1]} exceeds the plan's budget {top}; the curve "
                f"subsets what the arms sourced at the full budget, so every budget must be "
                f"at most {top} (raise plan.budget or drop the larger budgets)")  # fmt: skip
    return None


def truth_problem(cfg: AtlantisConfig) -> str | None:
    """Why ``loop.pool_truth`` cannot be read (None: it can, or it is not set).

    Read in full before any stage runs (every row parsed, every file it names looked up in
    the pool), so a bad truth file fails in seconds, not after hours of training.
    """
    if cfg.loop.pool_truth is None:
        return None
    from atlantis.data.truth import load_truth

    pool = cfg.generate.pool_folder()
    if pool is None:
        return (f"loop.pool_truth: a truth file describes the images of a retrieval pool, "
                f"but generate.source is {cfg.generate.source!r} (no pool); drop "
                "loop.pool_truth (fidelity is then the proxy in the baseline model's space)")  # fmt: skip
    try:
        load_truth(Path(cfg.loop.pool_truth).expanduser(), pool)
    except (AtlantisError, OSError) as exc:
        return f"loop.pool_truth: {exc}"
    return None


def check_truth_classes(run: Run, cfg: AtlantisConfig, say: Say) -> None:
    """Raise when ``loop.pool_truth`` names classes unlike the dataset's (see
    ``data.truth.check_truth_classes``); say how many pool images are of other classes."""
    if cfg.loop.pool_truth is None:
        return
    from atlantis.data.ingest import load_ingested
    from atlantis.data.truth import check_truth_classes as check
    from atlantis.data.truth import load_truth

    path = Path(cfg.loop.pool_truth).expanduser()
    records, _ = load_ingested(run)
    note = check(load_truth(path), {r.label for r in records}, path)
    if note:
        say(note)


def check_truth_covers(run: Run, cfg: AtlantisConfig, arm: str) -> None:
    """Raise when ``loop.pool_truth`` lacks rows for pool images ``arm`` sourced (naming them)."""
    if cfg.loop.pool_truth is None:
        return
    from atlantis.data.records import read_records
    from atlantis.data.truth import describe_missing, load_truth, missing_truth
    from atlantis.report.fidelity import pool_file

    path = Path(cfg.loop.pool_truth).expanduser()
    records = read_records(run.stage_dir(f"generate/{arm}") / "records.jsonl")
    files = [f for f in map(pool_file, records) if f is not None]
    missing = missing_truth(load_truth(path), files)
    if missing:
        raise describe_missing(missing, path)


def _check_data(cfg: AtlantisConfig) -> Any:
    """The dataset, read as ingest reads it but without decoding images (None: no root)."""
    from atlantis.data.readers import read_dataset

    if not cfg.data.root:
        raise StageError("data.root: not set; point it at the dataset folder (or its "
                         "annotation file)")  # fmt: skip
    root = Path(cfg.data.root).expanduser()  # as ingest reads it
    return read_dataset(cfg.data.format, root, skip_bad=cfg.data.skip_bad,
                        verify_images=False)  # fmt: skip


def _build(section: str, cfg: AtlantisConfig) -> Any:
    """Build (not load) the backend of ``section`` as its stage does: names and options."""
    if section == "caption":
        from atlantis.caption.stage import build_captioner

        return build_captioner(cfg.caption)
    if section == "generate":
        from atlantis.generate.registry import build_source

        return build_source(cfg.generate, cache_dir=None)
    from atlantis.embed.stage import build_embedder

    if section == "filter":
        from atlantis.filtering.stage import resolve_embed_config

        return build_embedder(resolve_embed_config(cfg.filter, cfg.embed))
    return build_embedder(cfg.embed)


def _check_backbone(train: TrainConfig) -> None:
    """The backbone's name (and timm's model list) and the ``pretrained`` weights file."""
    from atlantis.errors import ConfigError
    from atlantis.train.model import check_pretrained

    kind, _, rest = train.backbone.partition(":")
    if kind == "timm" and rest:
        import timm

        if not timm.is_model(rest):
            raise ConfigError(f"timm has no model {rest!r} (see timm.list_models())")
    elif not ((kind.startswith("efficientnet-lite") and not rest)
              or (kind == "transformers" and rest)):  # fmt: skip
        raise ConfigError(f"unknown backbone {train.backbone!r}; valid: efficientnet-lite0 "
                          "(-lite1, -lite2), timm:<model name>, "
                          "transformers:<hub id or folder>")  # fmt: skip
    check_pretrained(train.backbone, train.pretrained)


def _check_loss(train: TrainConfig, num_classes: int) -> None:
    from atlantis.train.losses import build_loss

    build_loss(train.loss, train.loss_options, distance="poincare" if train.head == "poincare"
               else "cosine", curvature=train.curvature, tau=train.tau,
               num_classes=max(2, num_classes), embedding_dim=train.embedding_dim,
               miner=train.miner, miner_options=train.miner_options)  # fmt: skip


def attack_targets(trainings: dict[str, list[str]]) -> list[str]:
    """The models PGD attacks: the first seed of the baseline and of the first targeted
    variant (or of the first arm there is), as train-stage arm names."""
    arms = [split_variant(v)[0] for v in trainings]
    picks = [v for v in trainings if v == BASELINE][:1]
    picks += [v for v, a in zip(trainings, arms, strict=True) if a == TARGETED][:1]
    picks = picks or list(trainings)[:1]
    return [trainings[v][0].removeprefix("train/") for v in picks if trainings[v]]


def source_arm(run: Run, cfg: AtlantisConfig, arm: str, *, progress: bool, say: Say) -> None:
    """Plan, source and filter one arm; then the filtering feedback rounds (Algorithm 1)."""
    from atlantis.filtering.stage import filter_arm, load_filter_stats
    from atlantis.generate.stage import generate
    from atlantis.plan.stage import load_summary, plan

    fcfg = filter_config(cfg, arm, run)
    rounds = 0 if arm != TARGETED or fcfg.is_sweep else cfg.loop.filter_feedback_rounds
    feedback = rounds + (cfg.loop.train_feedback_rounds if arm == TARGETED else 0)
    plan_cfg = cfg.plan.model_copy(update={"planner": arm})
    if min(feedback, cfg.plan.max_rounds) == 0:  # no round will draw on a reserve
        plan_cfg = plan_cfg.model_copy(update={"feedback_reserve": 0.0})
    plan(run, plan_cfg, arm, progress=progress)
    if cfg.plan.budget is None and (problem := budgets_problem(cfg, load_summary(run, arm).budget)):
        raise ConfigError(problem)  # a plan sized by per_class_target: known only now
    generate(run, cfg.generate, arm, progress=progress)
    filter_arm(run, fcfg, arm, cfg.embed, progress=progress)
    while _rounds_done(run, arm, "filter") < min(rounds, cfg.plan.max_rounds):
        if not _replan(run, cfg, arm, "filter", say):
            break
        generate(run, cfg.generate, arm, progress=progress)
        filter_arm(run, fcfg, arm, cfg.embed, progress=progress)
    if not fcfg.is_sweep:
        totals = load_filter_stats(run, arm)["totals"]
        summary = load_summary(run, arm)
        say(f"{arm}: planned {summary.n_items} of its budget {summary.budget} "
            f"({len(summary.rounds)} round(s)); kept {totals['kept']} of "
            f"{totals['synthetic']} sourced images")  # fmt: skip


def training_feedback_round(run: Run, cfg: AtlantisConfig, arm: str, *, progress: bool,
                            say: Say) -> bool:  # fmt: skip
    """Algorithm 2: re-plan the classes the trained model still retrieves poorly; False when
    there is nothing to add (no poor class, or the round limit)."""
    from atlantis.filtering.stage import filter_arm
    from atlantis.generate.stage import generate

    if not _replan(run, cfg, arm, "train", say):
        return False
    generate(run, cfg.generate, arm, progress=progress)
    filter_arm(run, filter_config(cfg, arm, run), arm, cfg.embed, progress=progress)
    return True


def train_arm(run: Run, cfg: AtlantisConfig, arm: str, *, budget: int | None = None,
              progress: bool, say: Say) -> dict[str, list[str]]:  # fmt: skip
    """Train ``arm`` once per seed; returns its train stages by variant: ``{arm: [...]}``,
    or one ``<arm>/delta-<d>`` variant per delta of a filter sweep (each a row of the
    comparison, its seeds averaged).

    ``budget``: a budget-curve point, trained on the nested subset of the arm's images at
    that budget as ``train/<arm>/budget-<b>``, or, when that subset is everything the arm
    trains on anyway, the arm's own stages.
    """
    from atlantis.filtering.config import delta_tag
    from atlantis.train.stage import stage_name, train

    fcfg = filter_config(cfg, arm)
    deltas: list[float | None] = [None]
    if arm not in REAL_ARMS and fcfg.is_sweep:
        deltas = list(fcfg.deltas)
    out: dict[str, list[str]] = {}
    steps = comparison_steps(run, cfg)  # the same for every arm, seed, delta and budget
    subset = arm_subset(run, cfg, arm, None)
    prefix = None
    if budget is not None:
        point = arm_subset(run, cfg, arm, budget)
        if _subset_ids(run, arm, point) != _subset_ids(run, arm, subset):
            subset, prefix = point, f"budget-{budget}"
    for delta in deltas:
        variant = arm if delta is None else f"{arm}/{delta_tag(delta)}"
        for seed, seed_part in arm_trainings(cfg.loop, cfg.train):
            tag = "/".join(t for t in (prefix, seed_part) if t) or None
            tcfg = cfg.train.model_copy(update={"seed": seed, "steps": steps})
            name = stage_name(arm, delta, tag)
            force = _stale_checkpoint(run, tcfg, arm, delta, name, subset)
            m = train(run, tcfg, arm, delta=delta, tag=tag, subset=subset, force=force,
                      progress=progress)  # fmt: skip
            assert m is not None
            test = (m.info.get("test") or {}).get("R@1")
            say(f"{name} (seed {seed}): {m.status}; test R@1 "
                f"{'-' if test is None else f'{100 * test:.1f}'}")  # fmt: skip
            out.setdefault(variant, []).append(name)
    return out


def arm_subset(run: Run, cfg: AtlantisConfig, arm: str, budget: int | None) -> Subset:
    """Which synthetic images ``arm`` trains on at ``budget`` (None: its full budget).

    With ``loop.match_kept`` the naive arm gets at most as many images as the targeted arm
    kept at the same budget (the paper's NA); every other arm, all it kept there.
    """
    from atlantis.train.subsets import Subset, kept_count

    if arm in REAL_ARMS:
        return Subset()
    max_kept = None
    if arm == NAIVE and cfg.loop.match_kept and TARGETED in cfg.loop.arms:
        from atlantis.filtering.stage import load_kept, load_removed

        max_kept = kept_count(load_kept(run, TARGETED), load_removed(run, TARGETED), budget)
    return Subset(budget=budget, max_kept=max_kept)


def _subset_ids(run: Run, arm: str, subset: Subset) -> list[str]:
    from atlantis.filtering.stage import load_kept, load_removed
    from atlantis.train.subsets import select

    kept = load_kept(run, arm)
    return sorted(r.id for r in select(kept, load_removed(run, arm), subset))


def synthetic_test(run: Run, cfg: AtlantisConfig, trainings: dict[str, list[str]], *,
                   progress: bool, say: Say) -> None:  # fmt: skip
    """X_s: images sourced for the test classes, filtered, scored by each arm's first seed."""
    from atlantis.evaluation.synthetic_test import build_synthetic_test, evaluate_synthetic_test

    m = build_synthetic_test(run, cfg.embed, cfg.generate, per_class=cfg.loop.synthetic_test_per_class,
                             delta=cfg.loop.synthetic_test_delta, seed=cfg.train.seed,
                             progress=progress)  # fmt: skip
    say(f"X_s: kept {m.counts.get('kept', '?')} of {m.counts.get('synthetic', '?')} images")
    for names in trainings.values():
        if names:
            evaluate_synthetic_test(run, names[0].removeprefix("train/"))


def _rounds_done(run: Run, arm: str, source: str) -> int:
    from atlantis.plan.stage import load_summary

    return sum(r.source == source for r in load_summary(run, arm).rounds)


def _replan(run: Run, cfg: AtlantisConfig, arm: str, source: str, say: Say) -> bool:
    """One feedback round; False (and why) when it adds nothing or the limit is reached."""
    from atlantis.plan.stage import FeedbackLimitError, load_summary, replan

    before = len(load_summary(run, arm).rounds)
    try:
        replan(run, cfg.plan.model_copy(update={"planner": arm}), arm, source)
    except FeedbackLimitError as exc:
        say(f"{arm}: {exc}")
        return False
    rounds = load_summary(run, arm).rounds
    if len(rounds) == before:
        return False  # this feedback was already in the plan
    added = rounds[-1].n_items
    say(f"{arm}: {source} feedback round {rounds[-1].round}: {len(rounds[-1].alerts)} "
        f"alert(s), {added} more image(s) planned")  # fmt: skip
    return added > 0


def _stale_checkpoint(run: Run, cfg: TrainConfig, arm: str, delta: float | None,
                      name: str, subset: Subset | None = None) -> bool:  # fmt: skip
    """Whether ``name``'s checkpoints were trained on other data (a feedback round changed
    the arm's images) or for another step count (``comparison_steps`` changed, e.g. a run
    from before equal optimisation): then it trains from scratch; else it resumes."""
    from atlantis.train import checkpoint as ckpt
    from atlantis.train.stage import split_records

    last = run.stage_dir(name) / ckpt.LAST
    if not last.exists():
        return False
    _, inputs = split_records(run, arm, delta, subset)
    state: dict[str, Any] = ckpt.load(last)
    steps = (state.get("config") or {}).get("steps")
    return state.get("inputs") != inputs or steps != cfg.steps


def _timer(timings: dict[str, float]):
    from contextlib import contextmanager

    @contextmanager
    def timed(key: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0

    return timed

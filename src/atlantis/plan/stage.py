"""The plan stage (APS): which synthetic images to make, and the text of each.

``plan(run, cfg, arm)`` writes stage ``plan/<arm>`` (the arm defaults to the planner's
name): ``plan.jsonl``, one ``PlanItem`` per image, and ``plan.json``, the ``PlanSummary``;
every LLM exchange is kept under ``llm/`` (a re-run reuses the answers). The targeted
planner reads ``insight`` (budget policy -> AugmentationObjective -> ReferenceDescription
-> descriptions per cell); the naive planner reads only ``ingest``.

**Feedback rounds live in the same files.** ``replan(run, cfg, arm, source)`` appends round
``n`` to ``plan.jsonl`` (earlier rounds untouched), adds it to ``plan.json``'s ``rounds``,
and records the feedback it read as an input of the stage (``round-<n>:filter/<arm>`` ->
that stage's output hash). One file means the generation stage needs no notion of rounds:
the plan's hash changes and, ids being stable, it makes only the new items. Re-planning
twice from the same feedback adds nothing; more than ``max_rounds`` rounds raise
``FeedbackLimitError``. A plain ``plan`` re-run keeps the rounds while round 0 is up to
date, and rebuilds from round 0 (dropping them) when the insight, the config or ``--force``
says round 0 must change. Feedback settings (``tau_*``, ``max_rounds``...) are excluded
from the config hash, so changing them never rebuilds round 0; the rest of a re-plan's
config is the one round 0 was made with (read back from the manifest).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from atlantis.data.ingest import load_ingested
from atlantis.errors import ConfigError, DataError, StageError
from atlantis.insight.schema import Insight
from atlantis.insight.stage import load_insight
from atlantis.llm import create_llm
from atlantis.llm.base import LLM
from atlantis.llm.prompts import load_prompt
from atlantis.llm.store import CallStore
from atlantis.plan import feedback as fb
from atlantis.plan.budget import Allocation, allocate, fit_rows
from atlantis.plan.config import FEEDBACK_KEYS, NAIVE_UNUSED_KEYS, RUNTIME_KEYS, PlanConfig
from atlantis.plan.items import build_items, describe_rows, naive_texts, reference_pools
from atlantis.plan.naive import naive_rows
from atlantis.plan.objective import AugmentationObjective, write_objective
from atlantis.plan.schema import AllocationRow, PlanItem, PlanSummary, RoundSummary, tally
from atlantis.redact import restore_secrets, write_redacted
from atlantis.store.run import Run, StageManifest, config_hash

TEMPLATES = ("aps/augmentation_objective", "aps/reference_description", "aps/descriptions")


class FeedbackLimitError(StageError):
    """The arm has had ``max_rounds`` feedback rounds: the loop stops here by design."""


def plan(
    run: Run, cfg: PlanConfig, arm: str | None = None, *, force: bool = False,
    progress: bool = False,
) -> StageManifest:  # fmt: skip
    """Run (or skip, when up to date) round 0 of stage ``plan/<arm>``."""
    arm = arm or cfg.planner
    name, exclude = f"plan/{arm}", _exclude(cfg)
    base = _base_inputs(run, cfg, arm)
    inputs, prev = dict(base), run.read_manifest(name)
    if (
        not force
        and prev is not None
        and prev.status == "done"
        and prev.config_hash == config_hash(cfg, exclude)
        and all(prev.input_hashes.get(k) == v for k, v in base.items())
        and all((run.stage_dir(name) / rel).exists() for rel in prev.outputs)
    ):  # round 0 is up to date: its feedback rounds stay
        inputs |= {k: v for k, v in prev.input_hashes.items() if k.startswith("round-")}
    # Check the budget and classes before the stage starts: a bad option must not turn a
    # good plan into a failed one. (Allocation is cheap: no model is asked.)
    if cfg.planner == "targeted":
        ins = load_insight(run)
        reserve = reserve_count(cfg.budget, cfg.feedback_reserve)
        alloc = allocate(ins, None if cfg.budget is None else cfg.budget - reserve,
                         per_class_target=cfg.per_class_target,
                         new_class_share=cfg.new_class_share, policy=cfg.policy,
                         classes=cfg.classes)  # fmt: skip
        if cfg.budget is None:  # sized by per_class_target: the reserve comes on top
            reserve = reserve_count(alloc.budget, cfg.feedback_reserve)
    else:
        records, _ = load_ingested(run)
        classes = list(dict.fromkeys(r.label for r in records if r.split == "train"))
        budget = cfg.budget if cfg.budget is not None else int(base["budget"])
        rows = naive_rows(classes, budget, cfg.seed)
    with run.stage(name, cfg, inputs, exclude=exclude, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        store = CallStore(ctx.dir / "llm")
        with ctx.timer("plan_s"):
            if cfg.planner == "targeted":
                items, summary = _targeted(run, cfg, arm, ins, alloc, store, progress, reserve)
            else:
                items, summary = _naive(run, cfg, arm, rows, len(classes))
        _write(ctx, items, summary, store)
    return run.require(name)


def reserve_count(budget: int | None, share: float) -> int:
    """Images of ``budget`` that round 0 leaves for feedback: ``round(share * budget)``, and
    never the whole budget (round 0 plans at least one image)."""
    if budget is None or budget <= 1:
        return 0
    return min(round(share * budget), budget - 1)


def _targeted(
    run: Run, cfg: PlanConfig, arm: str, ins: Insight, alloc: Allocation, store: CallStore,
    progress: bool, reserve: int = 0,
) -> tuple[list[PlanItem], PlanSummary]:  # fmt: skip
    def say(msg: str) -> None:
        if progress:
            print(f"plan/{arm}: {msg}", file=sys.stderr)

    llm = create_llm(cfg.llm, **cfg.llm_options)
    say("AugmentationObjective")
    objective = write_objective(llm, ins, alloc, store)
    say("ReferenceDescription and target-image descriptions")
    texts, refs = describe_rows(llm, ins, objective, alloc.rows, [], cfg, store)
    items = build_items(arm, 0, alloc.rows, texts, cfg, reference_pools(run))
    first = RoundSummary(round=0, source="insight", allocation=alloc.rows, n_items=len(items))
    meta = {"references": refs, "insight_llm": ins.metadata.get("llm"),
            "domain_criterion": ins.domain_criterion}  # fmt: skip
    policy = alloc.explanation
    if reserve:
        policy += (f" {reserve} of the arm's {alloc.budget + reserve} images are left for the "
                   "feedback rounds (plan.feedback_reserve).")  # fmt: skip
    summary = _summary(items, arm=arm, planner="targeted", budget=alloc.budget + reserve,
                       reserve=reserve, target_count=alloc.target, policy=policy, llm=llm,
                       objective=objective, rounds=[first], metadata=meta)  # fmt: skip
    return items, summary


def _naive(
    run: Run, cfg: PlanConfig, arm: str, rows: list[AllocationRow], n_classes: int
) -> tuple[list[PlanItem], PlanSummary]:
    items = build_items(arm, 0, rows, naive_texts(rows), cfg, reference_pools(run))
    copied = "" if cfg.budget is not None else " (as many as the targeted arm)"
    policy = (f"Naive-untargeted baseline (supplement E): {len(items)} images{copied}; each "
              f"image's class drawn uniformly at random (seed {cfg.seed}) from the "
              f"{n_classes} training classes; domain-free prompts 'a photo of a {{class}}'; "
              "no insight, no new classes.")  # fmt: skip
    first = RoundSummary(round=0, source="ingest", allocation=rows, n_items=len(items))
    summary = _summary(items, arm=arm, planner="naive", budget=len(items), target_count=None,
                       policy=policy, llm=None, objective=None, rounds=[first])  # fmt: skip
    return items, summary


def replan(run: Run, cfg: PlanConfig, arm: str, source: str) -> StageManifest:
    """Append a feedback round to ``plan/<arm>`` from ``filter/<arm>`` (Algorithm 1) or
    ``train/<arm>`` (Algorithm 2); only ``cfg``'s feedback settings are read."""
    if source not in ("filter", "train"):
        raise ConfigError(f"replan source {source!r}: expected 'filter' or 'train'")
    name = f"plan/{arm}"
    prev = run.require(name)
    summary, items = load_summary(run, arm), load_plan(run, arm)
    use = PlanConfig.model_validate(prev.config)  # secrets redacted: restored from cfg below
    use.llm_options = restore_secrets(use.llm_options, cfg.llm_options)
    use = use.model_copy(update={k: getattr(cfg, k) for k in FEEDBACK_KEYS | RUNTIME_KEYS})
    exclude = _exclude(use)
    base = _base_inputs(run, use, arm)
    if prev.config_hash != config_hash(use, exclude) or any(
        prev.input_hashes.get(k) != v for k, v in base.items()
    ):
        raise StageError(f"{name} is out of date with its inputs; plan round 0 again first: "
                         f"atlantis plan {run.root} --arm {arm}")  # fmt: skip
    src = f"{source}/{arm}"
    h = run.output_hash(src)
    if any(k.endswith(f":{src}") and v == h for k, v in prev.input_hashes.items()):
        return prev  # this feedback is already in the plan
    n = max(r.round for r in summary.rounds) + 1
    if n > use.max_rounds:
        raise FeedbackLimitError(
            f"{name} already has {n - 1} feedback round(s), the limit plan.max_rounds="
            f"{use.max_rounds}; the loop stops here (raise it with --set plan.max_rounds=N)"
        )
    alerts, rows, note, stopped = _feedback(run, use, src, source, summary, items)
    rows, cut = _within_budget(rows, summary)
    note = "; ".join(x for x in (note, cut) if x)
    new_items: list[PlanItem] = []
    if rows:
        texts, refs = _round_texts(run, use, summary, rows, items)
        new_items = build_items(arm, n, rows, texts, use, reference_pools(run))
        summary.metadata.setdefault("references", {}).update(refs)
    with run.stage(name, use, {**prev.input_hashes, f"round-{n}:{src}": h}, exclude=exclude) as ctx:
        rnd = RoundSummary(
            round=n,
            source=source,
            input=f"{src}@{h}",
            alerts=alerts,
            allocation=rows,
            n_items=len(new_items),
            note=note,
            stopped=stopped,
        )
        all_items = [*items, *new_items]
        per_class, per_cell = tally(all_items)
        policy = summary.policy + "".join(
            f"\nRound {n} stopped asking for '{c}', which the source does not serve ({why}); "
            "no later round asks for it." for c, why in stopped.items())  # fmt: skip
        summary = summary.model_copy(update={"n_items": len(all_items), "per_class": per_class,
                                             "per_cell": per_cell, "policy": policy,
                                             "rounds": [*summary.rounds, rnd]})  # fmt: skip
        _write(ctx, all_items, summary, CallStore(ctx.dir / "llm"))
    return run.require(name)


def _within_budget(rows: list[AllocationRow], summary: PlanSummary,
                   ) -> tuple[list[AllocationRow], str]:  # fmt: skip
    """The round's rows cut to what is left of the arm's budget, and a note when cut."""
    room = max(0, summary.budget - summary.n_items)
    asked = sum(r.count for r in rows)
    if asked <= room:
        return rows, ""
    if room == 0:
        return [], (f"budget spent: {summary.n_items} of {summary.budget} planned; this round "
                    f"asked for {asked} more and adds nothing")  # fmt: skip
    return fit_rows(rows, room), (f"asked for {asked} images, {room} left of the budget of "
                                  f"{summary.budget}: cut in proportion")  # fmt: skip


def _feedback(
    run: Run, cfg: PlanConfig, src: str, source: str, summary: PlanSummary,
    items: list[PlanItem],
) -> tuple[list[fb.Alert], list[AllocationRow], str, dict[str, str]]:  # fmt: skip
    """Algorithm 1 or 2 on the feedback file of ``src``: alerts, rows to add, a note, and
    the classes this round stops asking for (``fb.stop_classes``)."""
    notes: list[str] = []
    before = stopped_classes(summary)
    stopped: dict[str, str] = {}
    if source == "filter":
        stats = fb.read_json_model(run.stage_dir(src) / "stats.json", fb.FilterStats)
        alerts = fb.filter_alerts(stats, cfg.tau_domain, cfg.tau_class, cfg.exemptions)
        found = fb.stop_classes(
            stats, summary.rounds, cfg.stop_kept_share, cfg.stop_after, cfg.stop_min_images
        )
        stopped = {c: why for c, why in found.items() if c not in before}
        earlier = [r for rs in summary.rounds if rs.source == "filter" for r in rs.allocation]
        rows = fb.filter_rows(alerts, items, earlier, cfg.feedback_cap, {*before, *stopped})
    else:
        train = fb.read_json_model(run.stage_dir(src) / "feedback.json", fb.TrainFeedback)
        alerts = fb.poor_class_alerts(train)  # type: ignore[arg-type]
        domains = _class_domains(run, summary, items)
        if unknown := [a.target for a in alerts if a.target not in domains]:
            notes.append(f"classes unknown to this run, skipped: {', '.join(unknown)}")
        new = {it.class_name for it in items if it.is_new_class}
        known = [a for a in alerts if a.target in domains and a.target not in before]
        rows = fb.train_rows(known, domains, cfg.feedback_per_class, new)
    for c, why in stopped.items():
        notes.append(f"stopped asking for '{c}': the source does not serve it ({why}); its "
                     "replacements are not planned and their share of the budget stays "
                     "unplanned")  # fmt: skip
    if again := [c for c in dict.fromkeys(a.target for a in alerts if not a.exempt)
                 if c in before]:  # fmt: skip
        notes.append(
            "not asked again, stopped in an earlier round as not served by the "
            f"source: {', '.join(again)}"
        )
    if not any(not a.exempt for a in alerts):
        notes.insert(0, "no alert: nothing sent to the APS")
    return alerts, rows, "; ".join(notes), stopped


def stopped_classes(summary: PlanSummary) -> dict[str, str]:
    """Every class an earlier round stopped asking for, with why (first round wins)."""
    out: dict[str, str] = {}
    for r in summary.rounds:
        for c, why in r.stopped.items():
            out.setdefault(c, f"round {r.round}: {why}")
    return out


def _round_texts(
    run: Run, cfg: PlanConfig, summary: PlanSummary, rows: list[AllocationRow],
    items: list[PlanItem],
) -> tuple[dict, dict[str, str]]:  # fmt: skip
    if summary.planner == "naive":
        return naive_texts(rows), {}
    objective = AugmentationObjective(
        objective=summary.objective or "-", guidelines=summary.metadata.get("guidelines", [])
    )
    llm = create_llm(cfg.llm, **cfg.llm_options)
    store = CallStore(run.stage_dir(f"plan/{summary.arm}") / "llm")
    return describe_rows(llm, load_insight(run), objective, rows, items, cfg, store)


def _class_domains(
    run: Run, summary: PlanSummary, items: list[PlanItem]
) -> dict[str, list[str | None]]:
    """Where a training-feedback class's images go: the insight's domains (targeted), or no
    domain (naive). Classes the run does not know are left out."""
    if summary.planner == "naive":
        records, _ = load_ingested(run)
        return {r.label: [None] for r in records if r.split == "train"}
    ins = load_insight(run)
    cells: list[str | None] = [d.name for d in ins.domains] if len(ins.domains) >= 2 else [None]
    known = [*ins.class_names, *(it.class_name for it in items if it.is_new_class)]
    return {c: list(cells) for c in known}


def _summary(
    items: list[PlanItem], *, llm: LLM | None, objective: AugmentationObjective | None,
    metadata: dict[str, Any] | None = None, **fields: Any,
) -> PlanSummary:  # fmt: skip
    per_class, per_cell = tally(items)
    meta = dict(metadata or {})
    if objective is not None:
        meta["guidelines"] = objective.guidelines
    lm = bool(llm and llm.is_language_model)
    return PlanSummary(
        n_items=len(items), per_class=per_class, per_cell=per_cell,
        llm=llm.identity if llm else None, is_language_model=lm,
        objective=objective.objective if objective else None,
        prompts={t: load_prompt(t).ref for t in TEMPLATES} if lm else {},
        metadata=meta, **fields,
    )  # fmt: skip


def _write(ctx, items: list[PlanItem], summary: PlanSummary, store: CallStore) -> None:
    write_redacted(ctx.dir / "plan.jsonl", "".join(it.model_dump_json() + "\n" for it in items))
    write_redacted(ctx.dir / "plan.json", summary.model_dump_json(indent=2) + "\n")
    ctx.add_output(ctx.dir / "plan.jsonl")
    ctx.add_output(ctx.dir / "plan.json")
    ctx.counts.update(items=len(items), classes=len(summary.per_class),
                      new_class_items=sum(it.is_new_class for it in items),
                      rounds=len(summary.rounds), llm_exchanges=len(store))  # fmt: skip
    ctx.info.update(planner=summary.planner, llm=summary.llm,
                    is_language_model=summary.is_language_model)  # fmt: skip
    if stopped := stopped_classes(summary):
        ctx.info["stopped_classes"] = stopped  # classes no round asks the source for again


def _exclude(cfg: PlanConfig) -> set[str]:
    return FEEDBACK_KEYS | RUNTIME_KEYS | (NAIVE_UNUSED_KEYS if cfg.planner == "naive" else set())


def _base_inputs(run: Run, cfg: PlanConfig, arm: str) -> dict[str, str]:
    """The stages round 0 reads (their output hashes); a naive plan without a budget also
    depends on the size of the targeted arm's round 0, which it copies."""
    if cfg.planner == "targeted":
        return {"insight": run.output_hash("insight"), "ingest": run.output_hash("ingest")}
    inputs = {"ingest": run.output_hash("ingest")}
    if cfg.budget is None:
        m = run.read_manifest("plan/targeted")
        if m is None or m.status != "done" or arm == "targeted":
            raise ConfigError(
                "no budget for the naive plan: pass --budget N, or plan the "
                "targeted arm first (the naive arm then makes as many images)"
            )
        inputs["budget"] = str(load_summary(run, "targeted").budget)
    return inputs


def load_summary(run: Run, arm: str) -> PlanSummary:
    """``plan.json`` of a finished ``plan/<arm>`` stage."""
    run.require(f"plan/{arm}")
    path = run.stage_dir(f"plan/{arm}") / "plan.json"
    return PlanSummary.model_validate_json(path.read_text(encoding="utf-8"))


def load_plan(run: Run, arm: str, rounds: Iterable[int] | None = None) -> list[PlanItem]:
    """The items of ``plan/<arm>`` (all rounds, or only ``rounds``), validated line by line."""
    run.require(f"plan/{arm}")
    path = run.stage_dir(f"plan/{arm}") / "plan.jsonl"
    wanted = None if rounds is None else set(rounds)
    items = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            it = PlanItem.model_validate_json(line)
        except ValueError as e:
            raise DataError(f"not a valid plan item: {str(e)[:300]}", path, lineno) from None
        if wanted is None or it.round in wanted:
            items.append(it)
    return items

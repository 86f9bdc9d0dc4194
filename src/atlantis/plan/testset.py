"""The plan of the synthetic test set X_s: images of the *test* classes, to measure on.

The paper also evaluates on synthetic test sets: images generated for the test classes and
ORDC-filtered against the real test-class centroids (``atlantis.evaluation.synthetic_test``).
This module writes what to generate, as stage ``plan/testset`` in exactly the plan stage's
format (``plan.jsonl`` of ``PlanItem``, ``plan.json`` a ``PlanSummary``), so the generate
stage makes X_s with any image source, unchanged: ``generate(run, cfg, "testset")``.

Each test class gets ``per_class`` items. When the test records carry domains, a class's
items cycle through the domains of its test images, so X_s covers every style the real test
set has; the text is a template of the class name (and domain), no insight and no language
model: X_s must not depend on what the training-side APS learnt. Ids and seeds come from
``plan.schema`` (arm ``testset``, round 0, class, domain, index in the cell), so asking for
more images per class keeps the first ones and generation only makes the new ones.

The schema has no step of its own for X_s: items use ``step="naive"`` (class-name prompts,
no insight) and the summary ``planner="naive"``; ``reason`` and ``policy`` say it is X_s.
"""

from __future__ import annotations

import string
from typing import Any

from atlantis.data.ingest import load_ingested
from atlantis.errors import ConfigError, StageError
from atlantis.plan.descriptions import article, display_name
from atlantis.plan.schema import (
    AllocationRow,
    PlanItem,
    PlanSummary,
    RoundSummary,
    item_id,
    item_seed,
    tally,
)
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run, StageManifest

ARM = "testset"
STAGE = f"plan/{ARM}"
#: Placeholders: ``{class}`` the class as words, ``{domain}``, ``{a}`` "a" or "an".
TEMPLATE = "a photo of {a} {class} in the {domain} style"
PLAIN_TEMPLATE = "a photo of {a} {class}"  # classes whose test images carry no domain
FIELDS = frozenset({"class", "domain", "a"})


def testset_items(
    run: Run, per_class: int, seed: int, template: str = TEMPLATE, *,
    plain_template: str = PLAIN_TEMPLATE, negative_prompt: str | None = None,
) -> list[PlanItem]:  # fmt: skip
    """``per_class`` items for every test class of the ingest, in dataset order.

    A class whose test records carry domains cycles through them (sorted), item by item;
    otherwise its items have no domain and use ``plain_template``.
    """
    if per_class < 1:
        raise ConfigError(f"per_class must be at least 1 image per test class, got {per_class}")
    _check_template(template, "template", needs_domain=True)
    _check_template(plain_template, "plain_template", needs_domain=False)
    domains = class_domains(run)
    items = []
    for c, cells in domains.items():
        name = display_name(c)
        used: dict[str | None, int] = {}
        for i in range(per_class):
            d = cells[i % len(cells)]
            index = used[d] = used.get(d, -1) + 1
            id_ = item_id(ARM, 0, c, d, index)
            text = (template if d is not None else plain_template).format(
                **{"class": name, "domain": d or "", "a": article(name)}
            )
            reason = (f"synthetic test set X_s: {per_class} image(s) of test class {c!r}"
                      + (f", cycling its {len(cells)} test domain(s)" if d else ""))  # fmt: skip
            items.append(PlanItem(id=id_, arm=ARM, round=0, index=index, class_name=c, domain=d,
                                  description=text, negative_prompt=negative_prompt,
                                  seed=item_seed(seed, id_), step="naive",
                                  reason=reason))  # fmt: skip
    return items


def class_domains(run: Run) -> dict[str, list[str | None]]:
    """Test class -> the sorted domains of its test images (``[None]`` when they have none)."""
    records, _ = load_ingested(run)
    test = [r for r in records if r.split == "test"]
    if not test:
        split = run.require("ingest").config.get("split", "?")
        raise StageError(
            f"run {run.root}: the ingest has no test images (data.split={split!r}), so there "
            "are no test classes to make a synthetic test set of; re-ingest with a split "
            "that has a test side (data.split=zsl or fsl)"
        )
    found: dict[str, set[str]] = {}
    for r in test:
        found.setdefault(r.label, set()).update(r.domains)
    return {c: sorted(ds) or [None] for c, ds in found.items()}  # type: ignore[misc]


def plan_testset(
    run: Run, per_class: int, seed: int = 0, template: str = TEMPLATE, *,
    plain_template: str = PLAIN_TEMPLATE, negative_prompt: str | None = None,
    force: bool = False,
) -> StageManifest:  # fmt: skip
    """Write (or skip, when up to date) stage ``plan/testset`` from the ingest's test split."""
    cfg: dict[str, Any] = {"per_class": per_class, "seed": seed, "template": template,
                           "plain_template": plain_template,
                           "negative_prompt": negative_prompt}  # fmt: skip
    items = testset_items(run, per_class, seed, template, plain_template=plain_template,
                          negative_prompt=negative_prompt)  # fmt: skip
    with run.stage(STAGE, cfg, {"ingest": run.output_hash("ingest")}, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        summary = _summary(items, per_class, seed)
        atomic_write_text(ctx.dir / "plan.jsonl", "".join(it.model_dump_json() + "\n"
                                                          for it in items))  # fmt: skip
        atomic_write_text(ctx.dir / "plan.json", summary.model_dump_json(indent=2) + "\n")
        ctx.add_output(ctx.dir / "plan.jsonl")
        ctx.add_output(ctx.dir / "plan.json")
        ctx.counts.update(items=len(items), classes=len(summary.per_class), new_class_items=0,
                          rounds=1, llm_exchanges=0)  # fmt: skip
        ctx.info.update(planner="testset", llm=None, is_language_model=False)
    return run.require(STAGE)


def _summary(items: list[PlanItem], per_class: int, seed: int) -> PlanSummary:
    per_class_counts, per_cell = tally(items)
    reason = {(it.class_name, it.domain): it.reason for it in items}
    rows = [AllocationRow(class_name=c.class_name, domain=c.domain, count=c.count, step="naive",
                          reason=reason[(c.class_name, c.domain)]) for c in per_cell]  # fmt: skip
    policy = (f"Synthetic test set X_s: {per_class} image(s) for each of the "
              f"{len(per_class_counts)} test classes, prompts from a template of the class "
              "name, cycling through each class's test domains; seeds from the plan seed "
              f"{seed}. Not training data: ORDC-filtered against the real test-class "
              "centroids, then used for evaluation only.")  # fmt: skip
    first = RoundSummary(round=0, source="ingest", allocation=rows, n_items=len(items))
    return PlanSummary(arm=ARM, planner="naive", budget=len(items), target_count=per_class,
                       n_items=len(items), per_class=per_class_counts, per_cell=per_cell,
                       policy=policy, rounds=[first],
                       metadata={"purpose": "synthetic test set X_s"})  # fmt: skip


def _check_template(template: str, name: str, *, needs_domain: bool) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ConfigError(f"testset {name} {template!r}: {e}") from None
    allowed = FIELDS if needs_domain else FIELDS - {"domain"}
    if bad := sorted(fields - allowed):
        raise ConfigError(
            f"testset {name} {template!r}: unknown placeholder(s) {bad}; use "
            + ", ".join("{" + f + "}" for f in sorted(allowed))
        )
    if "class" not in fields:
        raise ConfigError(f"testset {name} {template!r} must contain {{class}}")

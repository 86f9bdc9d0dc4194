"""Allocation rows -> plan items: the text of every image, its id, seed and references.

Shared by round 0 and the feedback rounds, so a re-plan's items are made exactly like the
first ones. ``describe_rows`` runs ReferenceDescription for the classes of the rows, then
the description writer class by class (up to ``plan.llm_concurrency`` classes at once, the
result identical to one after the other), telling it the texts the class already has
(earlier rounds) so that nothing repeats; ``build_items`` numbers the images of each
(round, class, domain) cell and gives each its text, id, seed and real reference images
(for img2img).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence

from atlantis.data.ingest import load_ingested
from atlantis.insight.schema import Insight
from atlantis.insight.text import normalise_name
from atlantis.llm.base import LLM
from atlantis.llm.concurrency import ordered_map
from atlantis.llm.store import CallStore
from atlantis.plan.config import PlanConfig
from atlantis.plan.descriptions import describe_class
from atlantis.plan.naive import naive_description
from atlantis.plan.objective import AugmentationObjective
from atlantis.plan.reference import class_facts, write_references
from atlantis.plan.schema import AllocationRow, PlanItem, item_id, item_seed
from atlantis.store.run import Run

MAX_TOKENS = 5  # caption tokens per class given to the description writer
MAX_DOMAIN_TOKENS = 3  # caption tokens per domain given to it
SUBJECT_SHARE = 0.8  # the subject word is in the top caption tokens of this share of classes
CellKey = tuple[str, str | None]
Texts = dict[CellKey, list[str]]


def describe_rows(
    llm: LLM,
    ins: Insight,
    objective: AugmentationObjective,
    rows: Sequence[AllocationRow],
    existing: Sequence[PlanItem],
    cfg: PlanConfig,
    store: CallStore,
) -> tuple[Texts, dict[str, str]]:
    """New texts per (class, domain) cell of ``rows``, and D_ref per class."""
    tokens, per_domain, subject = class_tokens(ins), domain_words(ins), subject_word(ins)
    facts = class_facts(ins, rows, tokens, per_domain)
    refs = write_references(llm, objective.objective, ins.domain_criterion, facts, store,
                            concurrency=cfg.llm_concurrency)  # fmt: skip
    requests: dict[str, Counter[str | None]] = {}
    why: dict[str, dict[str | None, list[str]]] = {}
    for r in rows:
        requests.setdefault(r.class_name, Counter())[r.domain] += r.count
        why.setdefault(r.class_name, {}).setdefault(r.domain, []).append(r.reason)
    before: dict[str, dict[str | None, list[str]]] = {}
    for it in existing:
        before.setdefault(it.class_name, {}).setdefault(it.domain, []).append(it.description)
    new = {r.class_name for r in rows if r.is_new_class}

    def describe(c: str) -> dict[str | None, list[str]]:
        return describe_class(
            llm,
            class_name=c,
            is_new_class=c in new,
            reference=refs[c],
            tokens=tokens.get(c, []),
            requests=dict(requests[c]),
            why={d: "; ".join(dict.fromkeys(w)) for d, w in why[c].items()},
            existing=before.get(c, {}),
            objective=objective.model_dump(),
            criterion=ins.domain_criterion,
            domains={d.name: d for d in ins.domains},
            per_call=cfg.descriptions_per_call,
            store=store,
            subject=subject,
            domain_words=per_domain,
        )

    # Classes are independent: up to llm_concurrency of them are written at once. A class's
    # own calls stay in order (each lists the texts already accepted, to avoid repeats).
    classes = list(requests)
    written = ordered_map(describe, classes, cfg.llm_concurrency)
    texts: Texts = {
        (c, d): t for c, got in zip(classes, written, strict=True) for d, t in got.items()
    }
    return texts, refs


def naive_texts(rows: Iterable[AllocationRow]) -> Texts:
    """The naive planner's texts: the same domain-free prompt for every image of a class."""
    texts: Texts = {}
    for r in rows:
        texts.setdefault((r.class_name, r.domain), []).extend(
            [naive_description(r.class_name)] * r.count
        )
    return texts


def build_items(
    arm: str,
    round_: int,
    rows: Sequence[AllocationRow],
    texts: Texts,
    cfg: PlanConfig,
    pools: dict[CellKey, list[str]],
) -> list[PlanItem]:
    """One item per image of ``rows``; ``index`` counts within the round's (class, domain)
    cell and picks the cell's ``index``-th text."""
    used: Counter[CellKey] = Counter()
    items = []
    for r in rows:
        cell = (r.class_name, r.domain)
        pool = [] if r.is_new_class else pools.get(cell) or pools.get((r.class_name, None), [])
        for _ in range(r.count):
            i = used[cell]
            used[cell] += 1
            id_ = item_id(arm, round_, r.class_name, r.domain, i)
            items.append(
                PlanItem(
                    id=id_,
                    arm=arm,
                    round=round_,
                    index=i,
                    class_name=r.class_name,
                    domain=r.domain,
                    description=texts[cell][i],
                    negative_prompt=cfg.negative_prompt,
                    seed=item_seed(cfg.seed, id_),
                    step=r.step,
                    reason=r.reason,
                    is_new_class=r.is_new_class,
                    reference_image_ids=pick_references(pool, id_, cfg.n_reference_images),
                )
            )
    return items


def pick_references(pool: Sequence[str], id_: str, k: int) -> list[str]:
    """``k`` ids of ``pool``, a different deterministic draw per item (hash order)."""
    if k <= 0 or not pool:
        return []
    return sorted(pool, key=lambda rid: hashlib.sha256(f"{id_}:{rid}".encode()).digest())[:k]


def reference_pools(run: Run) -> dict[CellKey, list[str]]:
    """Real training image ids per (class, None) and, where the insight placed images in
    domains (``insight/assignments.jsonl``), per (class, domain)."""
    records, _ = load_ingested(run)
    label = {r.id: r.label for r in records if r.split == "train" and r.source == "real"}
    pools: dict[CellKey, list[str]] = {}
    for rid, c in label.items():
        pools.setdefault((c, None), []).append(rid)
    path = run.stage_dir("insight") / "assignments.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("id") in label:
                for d in row.get("domains", []):
                    pools.setdefault((label[row["id"]], d), []).append(row["id"])
    return pools


def class_tokens(ins: Insight) -> dict[str, list[str]]:
    """Per class, caption tokens that say something about it: not words of its name, not
    tokens topping the lists of more than half the classes ("emoji", "photo"), and the most
    *distinctive* first: those in the fewest classes' lists (then by frequency in the
    class). "judge" tells a person-role image from a person-gesture one, "man" does not,
    and a description (or a retrieval query built from it) should say what tells classes
    apart."""
    lists = ins.top_tokens_per_class
    common = Counter(t.token for toks in lists.values() for t in toks)
    out = {}
    for c, toks in lists.items():
        name = set(normalise_name(c).split())
        keep = [t.token for t in toks if t.token not in name and common[t.token] <= len(lists) / 2]
        keep.sort(key=lambda token: common[token])  # stable: ties keep the frequency order
        out[c] = keep[:MAX_TOKENS]
    return out


def domain_words(ins: Insight) -> dict[str, list[str]]:
    """Per domain, the caption tokens distinctive of it (the insight's ``domain_tokens``):
    "water" for swimming, nothing for vendors whose captions are the same."""
    return {d: [t.token for t in toks][:MAX_DOMAIN_TOKENS] for d, toks in ins.domain_tokens.items()}


def subject_word(ins: Insight) -> str:
    """The word the captions use for every image ("emoji", "bird"): the most frequent noun
    overall, when it tops-lists at least ``SUBJECT_SHARE`` of the classes; else ""."""
    lists = ins.top_tokens_per_class
    nouns = [t.token for t in ins.top_tokens if t.pos == "noun"]
    if not nouns or not lists:
        return ""
    n_in = sum(any(t.token == nouns[0] for t in toks) for toks in lists.values())
    return nouns[0] if n_in >= SUBJECT_SHARE * len(lists) else ""

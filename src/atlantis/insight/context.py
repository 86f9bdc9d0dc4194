"""ContextMaker (supplement C.1.2): the frequency table and metadata -> a data context.

The LLM sees a summary, never the records: dataset size, a capped sample of class names,
class-size statistics, provided domain labels with counts, the top nouns and verbs, and a
handful of example captions (clipped). ``dataset_summary`` builds that summary once; the
later DIG functions reuse it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from atlantis.data.records import ImageRecord
from atlantis.insight.frequency import top_tokens
from atlantis.insight.schema import DataContext, FrequencyTable
from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore

TASK = "dig.context_maker"
TEMPLATE = "dig/context_maker"
MAX_CLASS_NAMES = 60
MAX_DOMAINS = 20
MAX_EXAMPLES = 8
MAX_CAPTION_CHARS = 200


def dataset_summary(
    records: Sequence[ImageRecord], *, dataset_format: str = "", captioner: str = ""
) -> dict[str, Any]:
    """Counts and capped samples of the training records: what an LLM may see of them."""
    classes = Counter(r.label for r in records if r.label)
    sizes = sorted(classes.values())
    domains = Counter(d for r in records for d in r.domains)
    return {
        "format": dataset_format,
        "captioner": captioner,
        "n_images": len(records),
        "n_classes": len(classes),
        "class_names_sample": list(classes)[:MAX_CLASS_NAMES],
        "class_size": {"min": sizes[0], "median": statistics.median(sizes), "max": sizes[-1]}
        if sizes else {},
        "provided_domains": dict(domains.most_common(MAX_DOMAINS)),
        "example_captions": example_captions(records),
    }  # fmt: skip


def example_captions(records: Sequence[ImageRecord], n: int = MAX_EXAMPLES) -> list[str]:
    """Up to ``n`` distinct captions, round-robin over classes: the variety, not the bulk."""
    per_class: dict[str, list[str]] = {}
    for r in records:
        for c in r.captions:
            if c.strip():
                per_class.setdefault(r.label, {}).setdefault(c[:MAX_CAPTION_CHARS])  # type: ignore[union-attr]
    queues = [list(v) for v in per_class.values()]
    out: list[str] = []
    for depth in range(max(map(len, queues), default=0)):
        out += [q[depth] for q in queues if depth < len(q) and q[depth] not in out]
        if len(out) >= n:
            break
    return out[:n]


def frequency_summary(table: FrequencyTable, nouns: int = 30, verbs: int = 20) -> dict[str, Any]:
    return {
        "n_captions": table.n_captions,
        "tagger": table.tagger,
        "top_nouns": [[t.token, t.count] for t in top_tokens(table, "noun", nouns)],
        "top_verbs": [[t.token, t.count] for t in top_tokens(table, "verb", verbs)],
    }


def context_task(summary: dict[str, Any], table: FrequencyTable) -> LLMTask:
    return LLMTask(name=TASK, template=TEMPLATE, schema=DataContext,
                   variables={"dataset": summary, "frequency": frequency_summary(table)})  # fmt: skip


def make_context(
    llm: LLM, summary: dict[str, Any], table: FrequencyTable, store: CallStore | None = None
) -> DataContext:
    """ContextMaker: ask ``llm`` for the data context of ``summary`` and ``table``."""
    return llm.run(context_task(summary, table), store)  # type: ignore[return-value]


@rule(TASK)
def context_rules(variables: dict[str, Any]) -> DataContext:
    """Deterministic context: the numbers, said plainly (example captions are not read)."""
    ds, freq = variables["dataset"], variables["frequency"]
    nouns = [t for t, _ in freq["top_nouns"]]
    verbs = [t for t, _ in freq["top_verbs"]]
    what = f"{ds['n_images']:,} training images in {ds['n_classes']:,} classes"
    if ds.get("format"):
        what += f" ({ds['format']} dataset)"
    summary = f"{what}, captioned by {ds.get('captioner') or 'an unknown captioner'}."
    if nouns:
        summary += f" The captions mostly mention {_join(nouns[:6])}"
        summary += f"; the most frequent actions are {_join(verbs[:4])}." if verbs else "."
    notes = []
    if size := ds.get("class_size"):
        notes.append(f"class sizes range from {size['min']} to {size['max']} images "
                     f"(median {size['median']:g})")  # fmt: skip
    if doms := ds.get("provided_domains"):
        notes.append("domain labels are provided: "
                     + ", ".join(f"{d} ({n} images)" for d, n in doms.items()))  # fmt: skip
    if nouns:
        counts = dict(freq["top_nouns"])
        notes.append("top nouns: " + ", ".join(f"{t} ({counts[t]})" for t in nouns[:10]))
    if verbs:
        counts = dict(freq["top_verbs"])
        notes.append("top verbs: " + ", ".join(f"{t} ({counts[t]})" for t in verbs[:10]))
    return DataContext(summary=summary, subjects=nouns[:10], notes=notes)


def _join(words: Sequence[str]) -> str:
    words = [f"'{w}'" for w in words]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

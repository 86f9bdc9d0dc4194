"""ClassInfer (supplement C.1.4): class counts and imbalance, or classes from captions.

With labels this is counting, no LLM: class sizes, the imbalance ratio (largest / smallest)
and the classes under a threshold (default: half the typical class size,
``atlantis.insight.sizes``, so "small" is relative to this dataset). Without labels (every label empty, or ``infer_classes`` set),
the ``dig.class_infer`` task proposes classes with caption keywords from the frequency
table; each image then takes the first proposed class whose keyword its captions contain,
and the counts are made over those inferred labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from atlantis.insight.context import frequency_summary
from atlantis.insight.frequency import TaggedRecords
from atlantis.insight.schema import ClassReport, DataContext, FrequencyTable, ProposedClasses
from atlantis.insight.sizes import small_class_threshold
from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore

TASK = "dig.class_infer"
TEMPLATE = "dig/class_infer"
UNMATCHED = ""  # images no inferred class matches keep no label (they count in no class)


def class_report(
    labels: Sequence[str], threshold: int | None = None, order: Sequence[str] | None = None
) -> ClassReport:
    """Counts of non-empty ``labels``; ``order`` fixes the class order (default: first seen)."""
    counts = Counter(label for label in labels if label)
    names = [c for c in (order or counts) if c in counts]
    names += [c for c in counts if c not in set(names)]
    sizes = [counts[c] for c in names]
    if threshold is None:
        threshold = small_class_threshold(sizes) if sizes else 1
    ratio = max(sizes) / min(sizes) if sizes else 1.0
    under = sorted((c for c in names if counts[c] < threshold), key=lambda c: (counts[c], c))
    return ClassReport(class_names=names, class_counts={c: counts[c] for c in names},
                       imbalance_ratio=round(ratio, 4), threshold=threshold,
                       under_represented=under)  # fmt: skip


def has_labels(labels: Sequence[str]) -> bool:
    return any(label.strip() for label in labels)


def class_task(context: DataContext, table: FrequencyTable, n_classes: int) -> LLMTask:
    variables = {"n_classes": n_classes, "context": context.model_dump(),
                 "frequency": frequency_summary(table, nouns=60, verbs=10)}  # fmt: skip
    return LLMTask(name=TASK, template=TEMPLATE, variables=variables, schema=ProposedClasses)


def infer_classes(
    llm: LLM,
    context: DataContext,
    table: FrequencyTable,
    tagged: TaggedRecords,
    n_classes: int = 20,
    store: CallStore | None = None,
) -> tuple[ProposedClasses, list[str]]:
    """Ask for classes, then label each record by keyword (``UNMATCHED`` when none fits)."""
    proposed: ProposedClasses = llm.run(class_task(context, table, n_classes), store)  # type: ignore[assignment]
    keyed = [(c.name, {k.strip().lower() for k in [*c.keywords, c.name]}) for c in proposed.classes]
    labels = []
    for toks in tagged.tokens:
        lemmas = {t for t, _ in toks}
        labels.append(next((name for name, kws in keyed if kws & lemmas), UNMATCHED))
    return proposed, labels


@rule(TASK)
def class_rules(variables: dict[str, Any]) -> ProposedClasses:
    """The most frequent caption nouns that are concrete things (WordNet), one class each."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    n = int(variables["n_classes"])
    concrete = {"noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.object",
                "noun.person", "noun.plant"}  # fmt: skip
    nouns = [t for t, _ in variables["frequency"]["top_nouns"]]
    picked = [t for t in nouns if wn.lexname(t.replace(" ", "_"), "n") in concrete][:n]
    if not picked:
        return ProposedClasses(classes=[{"name": "all images", "keywords": []}],
                               rationale="no concrete noun in the captions: one class")  # fmt: skip
    return ProposedClasses(
        classes=[{"name": t, "keywords": [t]} for t in picked],
        rationale="the most frequent concrete nouns of the captions (WordNet: animals, "
        "artifacts, food, plants, people...), one class each",
    )

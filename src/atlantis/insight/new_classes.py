"""NewClassSearch (supplement C.1.5): practical classes the data lacks, for novel-class synthesis.

The LLM gets the data context, (capped) training and test class names and the class
statistics, and proposes ``n_requested`` classes: a few more than ``n`` are asked for,
because every answer is post-filtered. A proposal is dropped when its normalised name is a
training class, a test class (the evaluation must stay zero-shot: a synthetic "new" class
that is really a test class would leak it) or a repeat; the first ``n`` survivors are kept
and every drop is reported with its reason.

The ``rules`` handler (no model) uses WordNet: it finds the head noun of each class name
(``001.Black_footed_Albatross`` -> albatross, ``animal-mammal`` -> mammal, ``face-smiling``
-> face) and its sense that fits the other class names (``disambiguate``). A class *is*
its head when the name is just the noun (``chair``), so its siblings sit under the head's
hypernyms (furniture -> bench, wardrobe); a modified name (``Laysan Albatross``) is a kind
of its head, so its siblings are the head's other hyponyms (wandering albatross). Parents
are ranked by how many class names share them and their other children proposed (the
classes' co-hyponyms): concrete things (animals, artifacts, food, plants...) before
abstract ones, then the most shared parent first, then the more common word (SemCor
count), then alphabetically.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from atlantis.insight.schema import ClassReport, DataContext, NewClasses
from atlantis.insight.text import normalise_name
from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.rules import rule
from atlantis.llm.store import CallStore

TASK = "dig.new_class_search"
TEMPLATE = "dig/new_class_search"
MAX_NAMES = 150
#: Things one can take a picture of: ranked before abstract siblings.
CONCRETE_LEXNAMES = frozenset({"noun.animal", "noun.artifact", "noun.body", "noun.food",
                               "noun.object", "noun.person", "noun.plant", "noun.substance"})  # fmt: skip
#: The top of WordNet's noun hierarchy: sharing these says nothing about two senses.
_TOO_GENERAL = frozenset({"entity", "physical_entity", "abstraction", "object", "whole",
                          "thing", "matter", "causal_agent", "living_thing", "organism",
                          "psychological_feature", "attribute", "relation", "group"})  # fmt: skip


def new_class_task(
    context: DataContext, report: ClassReport, test_names: Sequence[str], n: int
) -> LLMTask:
    variables = {
        "n_requested": n + max(3, n // 2),
        "context": context.model_dump(),
        "n_train_classes": len(report.class_names),
        "train_classes": report.class_names[:MAX_NAMES],
        "n_test_classes": len(test_names),
        "test_classes": list(test_names)[:MAX_NAMES],
        "under_represented": report.under_represented[:30],
    }
    return LLMTask(name=TASK, template=TEMPLATE, variables=variables, schema=NewClasses)


def search_new_classes(
    llm: LLM,
    context: DataContext,
    report: ClassReport,
    test_names: Sequence[str],
    n: int = 10,
    store: CallStore | None = None,
) -> tuple[NewClasses, list[dict[str, str]]]:
    """NewClassSearch: up to ``n`` filtered new classes, and the dropped proposals."""
    if n <= 0:
        return NewClasses(new_classes=[], rationale="no new classes requested"), []
    answer: NewClasses = llm.run(new_class_task(context, report, test_names, n), store)  # type: ignore[assignment]
    kept, dropped = filter_new_classes(answer.new_classes, report.class_names, test_names, n)
    return NewClasses(new_classes=kept, rationale=answer.rationale), dropped


def name_key(name: str) -> str:
    """The comparison key of a class name: normalised words, last word in singular."""
    words = normalise_name(name).split()
    if words:
        from atlantis.insight.wordnet import WordNetMissingError, wordnet

        # spaCy users may lack WordNet: then words are compared as written
        with contextlib.suppress(WordNetMissingError):
            words[-1] = wordnet().morphy(words[-1], "n") or words[-1]
    return " ".join(words).replace("_", " ")


def filter_new_classes(
    proposed: Sequence[str], train: Sequence[str], test: Sequence[str], n: int
) -> tuple[list[str], list[dict[str, str]]]:
    """Keep the first ``n`` proposals that are neither train nor test classes nor repeats."""
    train_keys = {name_key(c) for c in train}
    test_keys = {name_key(c) for c in test}
    kept: list[str] = []
    seen: set[str] = set()
    dropped: list[dict[str, str]] = []
    for raw in proposed:
        name = " ".join(str(raw).split())
        key = name_key(name)
        reason = ("empty name" if not key else "a training class" if key in train_keys
                  else "a test class" if key in test_keys else "a repeat" if key in seen
                  else "over the requested number" if len(kept) >= n else "")  # fmt: skip
        if reason:
            dropped.append({"name": name, "reason": reason})
            continue
        seen.add(key)
        kept.append(name)
    return kept, dropped


@rule(TASK)
def new_class_rules(variables: dict[str, Any]) -> NewClasses:
    """WordNet co-hyponyms of the class names' head nouns (see the module docstring)."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    n = int(variables["n_requested"])
    heads = {c: h for c in variables["train_classes"] if (h := head_lemma(c))}
    senses = disambiguate(list(dict.fromkeys(heads.values())))
    shared: Counter[str] = Counter()  # parent synset -> classes under it
    parents, classes_themselves = {}, set()
    for cls, lemma in heads.items():
        s = senses[lemma]
        if name_key(cls) != lemma.replace("_", " "):  # "laysan albatross": a kind of albatross
            above = [s]
        else:  # "chair" is the head itself: its siblings are under its hypernyms
            above, _ = wn.hypernyms(s), classes_themselves.add(s.offset)
        for p in above:
            shared[p.offset] += 1
            parents[p.offset] = p
    class_names = [*variables["train_classes"], *variables["test_classes"]]
    taken = {name_key(c) for c in class_names} | {h.replace("_", " ") for h in heads.values()}
    taken |= {w for c in class_names for w in normalise_name(c).split()}  # "tern" of "black tern"
    ranked: list[tuple[tuple, str]] = []
    for off, h in parents.items():
        for sib in wn.hyponyms(h):
            name = sib.words[0]
            label = name.replace("_", " ")
            if (sib.offset in classes_themselves or sib.offset in parents
                    or not name[:1].islower() or name_key(label) in taken
                    or name in _TOO_GENERAL):  # fmt: skip
                continue  # a class itself, a proper name, or a name the data already uses
            abstract = sib.lexname not in CONCRETE_LEXNAMES  # "hope" cannot be photographed
            ranked.append(((abstract, -shared[off], -wn.count(name, "n"), label), label))
    names = list(dict.fromkeys(label for _, label in sorted(ranked)))[:n]
    hypernyms = [parents[o].words[0].replace("_", " ") for o, _ in shared.most_common(3)]
    return NewClasses(
        new_classes=names,
        rationale=("WordNet co-hyponyms of the classes' head nouns, under the hypernyms the "
                   f"classes share most ({', '.join(hypernyms)})") if names else
        "no WordNet noun found in the class names, so no sibling classes could be proposed",
    )  # fmt: skip


def head_lemma(class_name: str) -> str | None:
    """The WordNet noun a class name is about: the whole name or its last two words when
    WordNet has them as a compound (``sea_lion``), else the last word that is a noun and
    not mainly a modifier (``face-smiling`` -> face, ``hand-fingers-open`` -> finger,
    ``California_Gull`` -> gull)."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    words = normalise_name(class_name).split()
    for cand in ("_".join(words), "_".join(words[-2:])) if len(words) > 1 else ():
        if lemma := wn.morphy(cand, "n"):
            return lemma
    for w in reversed(words):
        lemma = wn.morphy(w, "n")
        if lemma is None or w.endswith("ing"):
            continue
        modifier = [wn.count(x, p) for p in ("a", "r") if (x := wn.morphy(w, p))]
        if wn.count(lemma, "n") >= max(modifier, default=0):  # not "open", "other"
            return lemma
    return None


def disambiguate(lemmas: Sequence[str], depth: int = 5) -> dict:  # -> {lemma: Synset}
    """One sense per lemma. Class names of one dataset are about one world: "gull" among
    albatrosses and terns is the bird, not a dupe. A sense scores the number of *other*
    lemmas with a sense sharing one of its near ancestors (``depth`` levels, the top of the
    hierarchy such as "entity" or "object" excluded), minus its frequency rank, so a rarer
    sense wins only with more support than the ranks it skips."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()

    def ancestors(s) -> set[str]:
        out, frontier = set(), [s]
        for _ in range(depth):
            frontier = [h for x in frontier for h in wn.hypernyms(x)]
            out.update(h.offset for h in frontier if h.words[0] not in _TOO_GENERAL)
        return out

    senses = {lemma: wn.synsets(lemma, "n") for lemma in lemmas}
    anc = {lemma: [ancestors(s) for s in ss] for lemma, ss in senses.items()}
    union = {lemma: set().union(*a) if a else set() for lemma, a in anc.items()}
    chosen = {}
    for lemma, ss in senses.items():
        if not ss:
            continue
        scores = [sum(1 for other in lemmas if other != lemma and a & union[other])
                  for a in anc[lemma]]  # fmt: skip
        chosen[lemma] = ss[max(range(len(ss)), key=lambda i: (scores[i] - i, -i))]
    return chosen

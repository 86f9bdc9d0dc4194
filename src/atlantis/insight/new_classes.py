"""NewClassSearch (supplement C.1.5): practical classes the data lacks, for novel-class synthesis.

The LLM gets the data context, (capped) training and test class names and the class
statistics, and proposes ``n_requested`` classes: a few more than ``n`` are asked for,
because every answer is post-filtered. A proposal is dropped when its normalised name is a
training class, a test class (the evaluation must stay zero-shot: a synthetic "new" class
that is really a test class would leak it) or a repeat; the first ``n`` survivors are kept
and every drop is reported with its reason.

The ``rules`` handler (no model) proposes classes only from WordNet evidence that they
belong to the data's domain, and otherwise none (its rationale says why):

1. every class name is *resolved* to a WordNet noun sense (``resolve_class``): the whole
   name when WordNet lists it (``mallard``, ``sports car``, ``black-footed albatross``),
   or else a kind of its head noun when the name is modifiers + a final head noun
   (``Laysan Albatross`` -> a kind of albatross). Category-path labels are *not* resolved:
   a head that is not the last word (``face-smiling``, ``hand-fingers-open``) or a modifier
   that is a noun above the head (``animal-mammal``: a mammal is an animal; ``food-fruit``);
   senses are chosen to fit the other class names (``disambiguate``);
2. more than ``MIN_SHARE`` of all classes must resolve, and more than ``MIN_SHARE`` of all
   classes must share one WordNet ancestor below the top of the hierarchy (``bird``,
   ``motor vehicle``): the evidence that the data is about one kind of thing;
3. the proposals are the co-hyponyms (siblings) of the classes under that ancestor: the
   other hyponyms of a whole-name class's hypernyms (chair -> bench, stool), the other
   hyponyms of a modified name's head (Laysan albatross -> wandering albatross); concrete
   things (animals, artifacts, food, plants...) before abstract ones, then the parent
   shared by most classes first, then the more common word (SemCor count), then
   alphabetically. Proper names and names the data already uses are skipped.
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
MIN_SHARE = 0.5  # of all classes: resolved, and under one common WordNet ancestor
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
    """WordNet co-hyponyms of the classes, only with evidence (see the module docstring)."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    n = int(variables["n_requested"])
    train = list(variables["train_classes"])
    resolved = {c: r for c in train if (r := resolve_class(c))}
    senses = disambiguate(list(dict.fromkeys(lemma for lemma, _ in resolved.values())))
    synset = {c: senses[lemma] for c, (lemma, _) in resolved.items() if lemma in senses}
    need = MIN_SHARE * len(train)
    if len(synset) <= need:
        unresolved = [c for c in train if c not in synset]
        return NewClasses(new_classes=[], rationale=(
            f"none proposed: only {len(synset)} of {len(train)} class names are WordNet nouns "
            f"or kinds of one (not resolved: {_sample(unresolved)}), so nothing shows which "
            "other classes belong to the data's domain"))  # fmt: skip
    closure = {c: _ancestors(s) | ({s.offset} if resolved[c][1] else set())
               for c, s in synset.items()}  # fmt: skip
    under: Counter[str] = Counter(off for offs in closure.values() for off in offs)
    size = {off: len(_ancestors(_synset(off))) for off in under}  # deeper: more ancestors
    best = max(under, key=lambda off: (under[off], size[off], off), default=None)
    if best is None or under[best] <= need:
        top = f" (most shared: {_word(best)}, {under[best]} classes)" if best else ""
        return NewClasses(new_classes=[], rationale=(
            f"none proposed: {len(synset)} of {len(train)} class names are WordNet nouns, but "
            f"no ancestor below the top of WordNet is shared by more than half of the "
            f"{len(train)} classes{top}, so nothing shows what the data's domain is"))  # fmt: skip
    members = [c for c in synset if best in closure[c]]
    shared: Counter[str] = Counter()  # parent synset -> classes under it
    parents, classes_themselves = {}, {synset[c].offset for c in members}
    for c in members:
        s = synset[c]
        for p in [s] if resolved[c][1] else wn.hypernyms(s):  # Laysan albatross: albatross
            if p.offset == best or best in _ancestors(p):
                shared[p.offset] += 1
                parents[p.offset] = p
    class_names = [*train, *variables["test_classes"]]
    taken = {name_key(c) for c in class_names} | {lemma.replace("_", " ")
                                                   for lemma, _ in resolved.values()}  # fmt: skip
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
    hypernyms = ", ".join(_word(o) for o, _ in shared.most_common(3))
    return NewClasses(new_classes=names, rationale=(
        f"WordNet co-hyponyms of the classes: {len(members)} of {len(train)} class names are "
        f"kinds of {_word(best)}; siblings under the hypernyms they share most ({hypernyms})"
        if names else f"none proposed: {len(members)} of {len(train)} class names are kinds of "
        f"{_word(best)}, but WordNet lists no other kind beside them that the data lacks"))  # fmt: skip


def resolve_class(class_name: str) -> tuple[str, bool] | None:
    """The WordNet noun a class name stands for, and whether the class is a *kind of* it:
    ``("mallard", False)``, ``("black-footed_albatross", False)``, ``("albatross", True)``
    for ``Laysan Albatross``; None for names WordNet does not place, among them category
    paths (``animal-mammal``, ``face-smiling``): see the module docstring."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    words = normalise_name(class_name).split()
    for cand in _joins(words):
        if lemma := wn.morphy(cand, "n"):
            return lemma, False
    if len(words) < 2:
        return None
    if len(words) > 2 and (lemma := wn.morphy("_".join(words[-2:]), "n")):
        modifiers = words[:-2]  # "grey sea lion": a kind of sea lion
    else:
        last = words[-1]
        lemma = wn.morphy(last, "n")
        if lemma is None or last.endswith("ing") or lemma != head_lemma(class_name):
            return None  # the name does not end in its head noun ("hand-fingers-open")
        modifiers = words[:-1]
    above = set().union(*(_ancestors(s) for s in wn.synsets(lemma, "n")))
    for m in modifiers:  # "animal-mammal": a path through the hierarchy, not a kind
        if (base := wn.morphy(m, "n")) and any(s.offset in above for s in wn.synsets(base, "n")):
            return None
    return lemma, True


def _joins(words: list[str]) -> list[str]:
    """The whole name as WordNet may spell it: ``black_footed_albatross`` and, with one
    hyphen, ``black-footed_albatross``."""
    if not words:
        return []
    out = ["_".join(words)]
    out += ["_".join([*words[:i], f"{words[i]}-{words[i + 1]}", *words[i + 2 :]])
            for i in range(len(words) - 1)]  # fmt: skip
    return out


def _ancestors(s) -> set[str]:
    """Offsets of every hypernym above ``s``, the too general top of WordNet left out."""
    from atlantis.insight.wordnet import wordnet

    wn = wordnet()
    out: set[str] = set()
    frontier = [s]
    while frontier:
        frontier = [h for x in frontier for h in wn.hypernyms(x) if h.offset not in out]
        out.update(h.offset for h in frontier if h.words[0] not in _TOO_GENERAL)
        frontier = [h for h in frontier if h.words[0] not in _TOO_GENERAL]
    return out


def _synset(offset: str):
    from atlantis.insight.wordnet import wordnet

    return wordnet().synset(offset, "n")


def _word(offset: str | None) -> str:
    return _synset(offset).words[0].replace("_", " ") if offset else ""


def _sample(names: Sequence[str], k: int = 5) -> str:
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


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
